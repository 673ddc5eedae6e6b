"""What the local run starts and with which environment: pure functions, no I/O."""

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

SERVICES = ("ingress", "router", "dispatcher", "profiles", "attachments")
SIMULATOR = "simulator"
SIMULATOR_DEFAULT_PORT = 8090
MONGO_DEFAULT_PORT = 27017
MONGO_DATABASE = "omnichannel"
LOOPBACK = "127.0.0.1"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
# Where each messenger's API lives on the simulator (docs/providers.md wire formats under these prefixes).
PROVIDER_URL_PATHS = {
    "TELEGRAM_API_URL": "telegram",
    "META_GRAPH_API_URL": "graph",
    "TWILIO_API_URL": "twilio",
}


@dataclass(frozen=True)
class ServiceSpec:
    """One process of the local run, answering GET /healthz on its port."""

    name: str
    module: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def service_specs(
    ports: Mapping[str, int], simulator_port: int | None, skip: frozenset[str] = frozenset()
) -> list[ServiceSpec]:
    """The simulator first (the services may call it at start), then the five services, less the skipped ones."""
    specs = [ServiceSpec(SIMULATOR, "omni_simulator", simulator_port)] if simulator_port is not None else []
    specs += [ServiceSpec(name, f"omni_{name}", ports[name]) for name in SERVICES]
    return [spec for spec in specs if spec.name not in skip]


def runnable(module: str) -> bool:
    """Whether `python -m module` would find something to run."""
    try:
        return importlib.util.find_spec(f"{module}.__main__") is not None
    except ModuleNotFoundError:
        return False


def provider_urls(simulator_url: str) -> dict[str, str]:
    return {variable: f"{simulator_url}/{path}" for variable, path in PROVIDER_URL_PATHS.items()}


def mongodb_url(port: int) -> str:
    return f"mongodb://{LOOPBACK}:{port}/{MONGO_DATABASE}"


def child_environment(
    base: Mapping[str, str],
    *,
    started_mongodb_url: str | None,
    admin_token: str,
    ingress_url: str,
    simulator_url: str | None,
    media_signing_key: str | None = None,
) -> dict[str, str]:
    """The environment of every child: the developer's own values win, except what points at the simulator."""
    env = dict(base)
    if started_mongodb_url is not None and not env.get("MONGODB_URL"):
        env["MONGODB_URL"] = started_mongodb_url
    if not env.get("ADMIN_TOKEN"):
        env["ADMIN_TOKEN"] = admin_token
    if not env.get("MEDIA_SIGNING_KEY") and media_signing_key:
        env["MEDIA_SIGNING_KEY"] = media_signing_key  # one for the whole run: ingress and dispatcher share it
    if not env.get("PUBLIC_BASE_URL"):
        env["PUBLIC_BASE_URL"] = ingress_url
    # The simulator and its attachment URLs live on loopback, which downloads refuse by default.
    env["ALLOW_PRIVATE_FETCH"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    if simulator_url is not None:
        env.update(provider_urls(simulator_url))
    return env


def host_and_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or LOOPBACK, parts.port or default_port


def is_local(host: str) -> bool:
    return host in LOCAL_HOSTS


def without_password(url: str) -> str:
    """`url` safe to print: the password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
