"""The production Caddyfile (deploy/Caddyfile), run by a real Caddy in front of the running services.

Debian's `caddy` (scripts/test.sh installs it) validates the file as compose runs it and shows how it routes;
then it runs with only what the file leaves to the environment changed: loopback ports, the services' addresses,
its internal CA instead of a public one. Everything is asked over HTTPS, trusting that CA's root (no verify=False):
a signed webhook reaches ingress and is stored, the console and the API reach the router, its event stream is not
buffered, metrics stay internal, plain HTTP is redirected.
"""

import json
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from omni_runtime.database import Database
from tests.support.events import EventStream
from tests.support.infra import free_port
from tests.support.seed import customer_message, seed_desk
from tests.support.stack import Stack, eventually, signed

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "deploy" / "Caddyfile"
PRODUCTION = {"DOMAIN": "chat.example.com"}  # all compose gives the proxy


def caddy_binary() -> str:
    found = shutil.which("caddy")
    assert found, "caddy is not installed: `apt-get install caddy` (scripts/test.sh installs it when missing)"
    return found


def caddy_environment(home: Path, variables: dict[str, str]) -> dict[str, str]:
    """Caddy's own storage (certificates, its CA) under `home`, never the user's; and the Caddyfile's variables."""
    (home / "data").mkdir(parents=True, exist_ok=True)
    (home / "config").mkdir(parents=True, exist_ok=True)
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        **variables,
    }


def caddy(home: Path, variables: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [caddy_binary(), *command, "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env=caddy_environment(home, variables),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def adapted(home: Path, variables: dict[str, str]) -> dict[str, Any]:
    done = caddy(home, variables, "adapt")
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def site_routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    [server] = config["apps"]["http"]["servers"].values()
    [site] = server["routes"]
    routes: list[dict[str, Any]] = site["handle"][0]["routes"]
    return routes


def proxied_to(route: dict[str, Any]) -> dict[str, Any]:
    [inner] = route["handle"][0]["routes"]
    [proxy] = inner["handle"]
    assert proxy["handler"] == "reverse_proxy"
    upstreams: dict[str, Any] = proxy["dynamic_upstreams"]
    return upstreams


@pytest.mark.parametrize(
    "variables", [PRODUCTION, {**PRODUCTION, "CADDY_TLS": "internal", "CADDY_ADMIN": "off"}], ids=["acme", "internal"]
)
def test_caddy_validates_the_caddyfile(tmp_path: Path, variables: dict[str, str]) -> None:
    done = caddy(tmp_path, variables, "validate")
    assert done.returncode == 0, done.stderr
    assert "Valid configuration" in done.stdout + done.stderr


def test_production_routes_webhooks_and_media_to_ingress_and_the_rest_to_the_router(tmp_path: Path) -> None:
    config = adapted(tmp_path, PRODUCTION)
    http = config["apps"]["http"]
    assert (http["http_port"], http["https_port"]) == (80, 443)
    [server] = http["servers"].values()
    assert server["listen"] == [":443"]
    assert server["routes"][0]["match"] == [{"host": ["chat.example.com"]}]
    assert config["admin"]["listen"] == "localhost:2019"  # the compose healthcheck asks it
    assert "tls" not in config["apps"], "production's certificate comes from a public CA (Caddy's default)"

    routes = {json.dumps(route.get("match")): route for route in site_routes(config) if route.get("group")}
    metrics = routes[json.dumps([{"path": ["/metrics", "/metrics/*"]}])]
    [inner] = metrics["handle"][0]["routes"]
    assert inner["handle"] == [{"handler": "static_response", "status_code": 404}]
    webhooks = routes[json.dumps([{"path": ["/webhooks/*", "/media/*"]}])]
    everything_else = routes["null"]
    assert proxied_to(webhooks) == {"source": "a", "name": "ingress", "port": "8080", "refresh": 5_000_000_000}
    assert proxied_to(everything_else) == {"source": "a", "name": "router", "port": "8081", "refresh": 5_000_000_000}
    assert len(routes) == 3


def test_caddy_tls_internal_switches_only_the_issuer(tmp_path: Path) -> None:
    config = adapted(tmp_path, {**PRODUCTION, "CADDY_TLS": "internal"})
    [policy] = config["apps"]["tls"]["automation"]["policies"]
    assert policy["subjects"] == ["chat.example.com"]
    assert [issuer["module"] for issuer in policy["issuers"]] == ["internal"]
    production = adapted(tmp_path, PRODUCTION)
    assert site_routes(config) == site_routes(production)


@dataclass
class Proxy:
    https_url: str
    http_url: str
    tls: ssl.SSLContext
    log: Path

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.https_url, verify=self.tls, headers=headers, timeout=15)


@contextmanager
def running_caddy(home: Path, stack: Stack) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str], Path]]:
    https_port, http_port = free_port(), free_port()
    variables = {
        "DOMAIN": "localhost",
        "CADDY_TLS": "internal",
        "CADDY_HTTP_PORT": str(http_port),
        "CADDY_HTTPS_PORT": str(https_port),
        "CADDY_ADMIN": "off",
        "UPSTREAM_INGRESS_HOST": "127.0.0.1",
        "UPSTREAM_INGRESS_PORT": str(stack.settings.ingress_port),
        "UPSTREAM_ROUTER_HOST": "127.0.0.1",
        "UPSTREAM_ROUTER_PORT": str(stack.settings.router_port),
    }
    log = home / "caddy.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [caddy_binary(), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            env=caddy_environment(home, variables),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, variables, log
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@asynccontextmanager
async def proxy_in_front(home: Path, stack: Stack) -> AsyncIterator[Proxy]:
    with running_caddy(home, stack) as (process, variables, log):
        root = home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

        async def answering() -> ssl.SSLContext | None:
            assert process.poll() is None, f"caddy exited with {process.returncode}:\n{log.read_text()}"
            if not root.exists():
                return None
            tls = ssl.create_default_context(cafile=str(root))
            try:
                async with httpx.AsyncClient(verify=tls, timeout=2) as client:
                    await client.get(f"https://localhost:{variables['CADDY_HTTPS_PORT']}/healthz")
            except httpx.TransportError:
                return None
            return tls

        tls = await eventually(answering, timeout=30, interval=0.2)
        yield Proxy(
            f"https://localhost:{variables['CADDY_HTTPS_PORT']}",
            f"http://localhost:{variables['CADDY_HTTP_PORT']}",
            tls,
            log,
        )


@pytest.mark.e2e
async def test_webhook_console_api_and_event_stream_through_caddy_over_https(
    stack: Stack, db: Database, tmp_path: Path
) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=1)
    [token] = desk.operators.values()
    async with proxy_in_front(tmp_path, stack) as proxy:
        async with proxy.client() as anonymous:
            page = await anonymous.get("/")
            assert page.status_code == 200, page.text
            assert '<script type="module" src="/console/console.js">' in page.text
            assert page.headers["strict-transport-security"] == "max-age=31536000"
            assert (await anonymous.get("/console/console.js")).status_code == 200
            refused = await anonymous.get("/api/chats")
            assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized")
            assert (await anonymous.get("/metrics")).status_code == 404
        async with stack.client("router") as direct:
            assert (await direct.get("/metrics")).status_code == 200  # the router has them; the proxy keeps them in

        async with (
            proxy.client(token) as operator,
            operator.stream("GET", "/api/events", timeout=httpx.Timeout(10.0, read=30.0)) as answer,
        ):
            assert answer.status_code == 200
            stream = EventStream(answer)
            try:
                assert (await stream.message(5.0)).id is not None  # the stream's opening message came through
                raw, headers = signed(customer_message("via-caddy"), desk.secret)
                async with proxy.client() as messenger:
                    accepted = await messenger.post("/webhooks/acme/receive", content=raw, headers=headers)
                    assert accepted.status_code == 200, accepted.text
                    forged = await messenger.post("/webhooks/acme/receive", content=raw + b" ", headers=headers)
                    assert forged.status_code == 401, "the signature is checked on the body Caddy passed on"
                started = time.monotonic()
                offered = await stream.next(timeout=10.0)
                print(
                    f"chat.offered through Caddy {(time.monotonic() - started) * 1000:.0f} ms after the webhook's 200"
                )
            finally:
                await stream.close()
        assert offered.event == "chat.offered"
        stored = await eventually(lambda: db.messages.find_one({"provider_message_id": "via-caddy", "routed": True}))
        assert stored["text"] == "hello"
        assert offered.body["chat_id"] == stored["chat_id"]

        async with proxy.client(token) as operator:
            chats = (await operator.get("/api/chats")).json()["items"]
            assert [chat["id"] for chat in chats] == [stored["chat_id"]]

        async with httpx.AsyncClient(timeout=5) as plain:
            redirect = await plain.post(f"{proxy.http_url}/webhooks/acme/receive", content=raw, headers=headers)
        assert redirect.status_code in (301, 308)
        assert redirect.headers["location"].startswith("https://localhost")
        assert await db.messages.count_documents({}) == 1
