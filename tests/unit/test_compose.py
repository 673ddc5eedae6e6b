"""docker-compose.yml and the Dockerfile name what exists, and the local run's pure helpers build the right plan."""

import importlib.util
import json
import re
import shlex
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from omni_devrun.demo import DemoSeed, curl_lines
from omni_devrun.plan import child_environment, provider_urls, service_specs, without_password
from omni_devrun.standins import free_port, port_is_free
from omni_runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROXY: dict[str, Any] = SERVICES.get("proxy", {})
CADDYFILE = ROOT / "deploy" / "Caddyfile"
REQUIRED_DOMAIN = "${DOMAIN:?set DOMAIN, the host name messengers and operators reach}"
# Ours are the ones built from the Dockerfile; rabbitmq and mongo are images configured their own way.
OURS = sorted(name for name, service in SERVICES.items() if "build" in service)
SETTINGS_VARIABLES = {field.upper() for field in Settings.model_fields}
SIMULATOR_URL = "http://127.0.0.1:8090"


def has_main(module: str) -> bool:
    try:
        return importlib.util.find_spec(f"{module}.__main__") is not None
    except ModuleNotFoundError:
        return False


def environment_names(service: dict[str, Any]) -> set[str]:
    environment = service.get("environment") or {}
    if isinstance(environment, dict):
        return set(environment)
    return {entry.split("=", 1)[0] for entry in environment}


def test_the_five_services_are_built_from_the_dockerfile() -> None:
    assert OURS == ["attachments", "dispatcher", "ingress", "profiles", "router"]


@pytest.mark.parametrize("name", OURS)
def test_command_runs_a_module_that_exists(name: str) -> None:
    command = SERVICES[name]["command"]
    assert command == ["python", "-m", f"omni_{name}"]
    assert has_main(command[2]), f"python -m {command[2]} would find no __main__"


@pytest.mark.parametrize("name", OURS)
def test_environment_names_only_settings_fields(name: str) -> None:
    unknown = environment_names(SERVICES[name]) - SETTINGS_VARIABLES
    assert not unknown, f"{name} sets variables no Settings field reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", OURS)
def test_core_configuration_is_set(name: str) -> None:
    environment = SERVICES[name]["environment"]
    assert environment["AMQP_URL"].endswith("@rabbitmq:5672/")
    assert environment["MONGODB_URL"] == "mongodb://mongo:27017/omnichannel"
    assert environment["HTTP_HOST"] == "0.0.0.0"
    assert environment["ADMIN_TOKEN"] == "${ADMIN_TOKEN:?set ADMIN_TOKEN}"
    assert (
        environment["AMQP_URL"]
        == "amqp://${RABBITMQ_USER:-omni}:${RABBITMQ_PASSWORD:?set RABBITMQ_PASSWORD}@rabbitmq:5672/"
    )
    assert environment["PUBLIC_BASE_URL"] == f"https://{REQUIRED_DOMAIN}"
    # Ingress and the dispatcher must share the key of media links, and there is no default one.
    assert environment["MEDIA_SIGNING_KEY"].startswith("${MEDIA_SIGNING_KEY:?")


def test_no_secret_has_a_default() -> None:
    """Like ADMIN_TOKEN, the broker's password must be given: compose refuses to start without one."""
    defaulted = re.findall(r"\$\{(\w+):?-", COMPOSE_TEXT)
    assert not [name for name in defaulted if re.search("PASS|TOKEN|SECRET|KEY", name)], defaulted
    assert SERVICES["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"] == "${RABBITMQ_PASSWORD:?set RABBITMQ_PASSWORD}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_healthcheck(name: str) -> None:
    assert SERVICES[name]["healthcheck"]["test"]


@pytest.mark.parametrize("name", OURS)
def test_healthcheck_asks_the_port_the_service_listens_on(name: str) -> None:
    port = SERVICES[name]["environment"][f"{name.upper()}_PORT"]
    test = " ".join(SERVICES[name]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/readyz" in test  # broker and database reachable, not just the process up
    assert "/healthz" not in test


@pytest.mark.parametrize("name", OURS)
def test_services_wait_for_a_healthy_broker_and_database(name: str) -> None:
    assert set(SERVICES[name]["depends_on"]) == {"rabbitmq", "mongo"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_depends_on_conditions_are_service_healthy(name: str) -> None:
    depends_on = SERVICES[name].get("depends_on") or {}
    assert isinstance(depends_on, dict), "the list form of depends_on does not wait for health"
    assert all(dependency["condition"] == "service_healthy" for dependency in depends_on.values())


def test_only_the_proxy_publishes_ports() -> None:
    published = {name for name, service in SERVICES.items() if service.get("ports")}
    assert published == {"proxy"}
    assert PROXY["ports"] == ["80:80", "443:443", "443:443/udp"]
    assert not [name for name, service in SERVICES.items() if "expose" in service]


@pytest.mark.parametrize("name", OURS)
def test_services_can_be_scaled(name: str) -> None:
    """`docker compose up --scale router=3` needs no fixed container name, host name or host port."""
    assert not {"container_name", "hostname", "ports"} & set(SERVICES[name])


def test_proxy_is_caddy_with_the_repository_s_caddyfile_and_a_kept_data_volume() -> None:
    assert PROXY["image"] == "caddy:2"
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in PROXY["volumes"]
    assert CADDYFILE.is_file()
    volumes = {entry.split(":")[1]: entry.split(":")[0] for entry in PROXY["volumes"]}
    assert volumes["/data"] in COMPOSE["volumes"], "Caddy's certificates and ACME account must outlive the container"
    assert PROXY["environment"] == {"DOMAIN": REQUIRED_DOMAIN}
    assert set(PROXY["depends_on"]) == {"ingress", "router"}


def caddyfile_upstream(service: str) -> str:
    """The `dynamic a <host> <port>` line naming a compose service in the Caddyfile, with its production defaults."""
    text = CADDYFILE.read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("dynamic a ")]
    defaults = [re.sub(r"\{\$\w+:([^}]*)\}", r"\1", line) for line in lines]
    [found] = [line for line in defaults if f" {service} " in line]
    return found


@pytest.mark.parametrize("name", ["ingress", "router"])
def test_caddy_balances_over_every_replica_the_service_s_dns_name_answers(name: str) -> None:
    port = SERVICES[name]["environment"][f"{name.upper()}_PORT"]
    assert caddyfile_upstream(name) == f"dynamic a {name} {port} {{"


def test_dockerfile_cmd_runs_a_module_that_exists() -> None:
    cmd_lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    assert len(cmd_lines) == 1
    command = json.loads(cmd_lines[0].removeprefix("CMD "))
    assert command[:2] == ["python", "-m"]
    assert has_main(command[2]), f"python -m {command[2]} would find no __main__"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert users
    assert users[-1] not in ("root", "0")


# The local run (tools/devrun)


def environment(base: dict[str, str], simulator_url: str | None = SIMULATOR_URL) -> dict[str, str]:
    return child_environment(
        base,
        started_mongodb_url="mongodb://127.0.0.1:27017/omnichannel",
        admin_token="generated",
        ingress_url="http://127.0.0.1:8080",
        simulator_url=simulator_url,
        media_signing_key="generated-media-key",
    )


def test_provider_urls_point_at_the_simulator() -> None:
    env = environment({"TELEGRAM_API_URL": "https://api.telegram.org"})
    assert env["TELEGRAM_API_URL"] == f"{SIMULATOR_URL}/telegram"
    assert env["META_GRAPH_API_URL"] == f"{SIMULATOR_URL}/graph"
    assert env["TWILIO_API_URL"] == f"{SIMULATOR_URL}/twilio"
    assert env["ALLOW_PRIVATE_FETCH"] == "true"


def test_provider_urls_are_left_alone_without_the_simulator() -> None:
    env = environment({"TELEGRAM_API_URL": "https://example.test/tg"}, simulator_url=None)
    assert env["TELEGRAM_API_URL"] == "https://example.test/tg"
    assert "TWILIO_API_URL" not in env


def test_provider_urls_cover_every_provider_setting() -> None:
    assert set(provider_urls(SIMULATOR_URL)) == {v for v in SETTINGS_VARIABLES if v.endswith("_API_URL")}


def test_given_mongodb_url_and_admin_token_are_kept() -> None:
    env = environment(
        {"MONGODB_URL": "mongodb://db.example.test:27017/prod", "ADMIN_TOKEN": "mine", "MEDIA_SIGNING_KEY": "my key"}
    )
    assert env["MONGODB_URL"] == "mongodb://db.example.test:27017/prod"
    assert env["ADMIN_TOKEN"] == "mine"
    assert env["MEDIA_SIGNING_KEY"] == "my key"


def test_missing_mongodb_url_and_admin_token_are_filled_in() -> None:
    env = environment({"MONGODB_URL": "", "PATH": "/usr/bin"})
    assert env["MONGODB_URL"] == "mongodb://127.0.0.1:27017/omnichannel"
    assert env["ADMIN_TOKEN"] == "generated"
    assert env["MEDIA_SIGNING_KEY"] == "generated-media-key"  # one key for every service of the run
    assert env["PUBLIC_BASE_URL"] == "http://127.0.0.1:8080"
    assert env["PATH"] == "/usr/bin"


def test_service_specs_put_the_simulator_first_and_honour_skips() -> None:
    ports = {"ingress": 9080, "router": 9081, "dispatcher": 9082, "profiles": 9083, "attachments": 9084}
    specs = service_specs(ports, 9090, skip=frozenset({"profiles"}))
    assert [(s.name, s.module, s.port) for s in specs] == [
        ("simulator", "omni_simulator", 9090),
        ("ingress", "omni_ingress", 9080),
        ("router", "omni_router", 9081),
        ("dispatcher", "omni_dispatcher", 9082),
        ("attachments", "omni_attachments", 9084),
    ]
    assert service_specs(ports, None)[0].name == "ingress"


def test_free_port_is_free_and_a_listening_port_is_not() -> None:
    port = free_port()
    assert port_is_free(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert not port_is_free(listener.getsockname()[1])


def test_passwords_are_masked_for_printing() -> None:
    assert without_password("amqp://guest:secret@127.0.0.1:5672/") == "amqp://guest:***@127.0.0.1:5672/"
    assert without_password("mongodb://127.0.0.1:27017/omnichannel") == "mongodb://127.0.0.1:27017/omnichannel"


def test_demo_push_line_is_a_signed_push_for_the_seeded_channel() -> None:
    seed = DemoSeed("queue-1", "operator-1", "op-token", "channel-1", "s3cr3t")
    lines = curl_lines(
        seed, ingress_url="http://127.0.0.1:8080", router_url="http://127.0.0.1:8081", simulator_url=SIMULATOR_URL
    )
    push = next(line for line in lines if "/_sim/push/thirdparty" in line)
    words = shlex.split(push)
    body = json.loads(words[words.index("-d") + 1])
    assert body["ingress_url"] == "http://127.0.0.1:8080"
    assert (body["provider"], body["secret"]) == ("demo", "s3cr3t")
    assert set(body["message"]) == {"message_id", "sender", "recipient", "timestamp", "type", "text"}
    assert body["message"]["recipient"] == "demo-bot"
    assert any("Bearer op-token" in line and "/api/chats" in line for line in lines)
    assert any(line.endswith(f"{SIMULATOR_URL}/_sim/requests") for line in lines)
