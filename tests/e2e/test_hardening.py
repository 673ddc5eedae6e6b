"""Bad input over real HTTP: files that could run script, JSON too deep, refused edits that must change nothing,
URLs that are not URLs, half-sent requests, unknown routes, and credentials kept out of URLs and logs."""

from typing import Any

import httpx
import pytest

from tests.support.seed import Desk
from tests.support.stack import Stack, signed

pytestmark = pytest.mark.e2e

SERVICES = ("ingress", "router", "dispatcher", "profiles", "attachments")
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"><script>alert(1)</script></svg>'
HTML = b"<html><body><script>alert(document.domain)</script></body></html>"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.4\n% report\n"


async def _customer_writes(stack: Stack, desk: Desk, body: dict[str, Any]) -> None:
    raw, headers = signed(body, desk.secret)
    async with stack.client("ingress") as ingress:
        answer = await ingress.post(f"/webhooks/{desk.provider}/receive", content=raw, headers=headers)
    assert answer.status_code == 200, answer.text


async def _get(client: httpx.AsyncClient, path: str) -> httpx.Response | str:
    """The answer, or what went wrong with the connection (a dropped connection is a failure too)."""
    try:
        return await client.get(path)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"


# --- 9: unknown routes, wrong methods, caching ---------------------------------------------------------


async def test_unknown_routes_and_wrong_methods_answer_the_json_error(stack: Stack) -> None:
    await stack.start(*SERVICES)
    for name in SERVICES:
        async with stack.client(name) as client:
            missing = await client.get("/no/such/path")
            assert missing.status_code == 404, name
            assert missing.json() == {"error": "not_found", "detail": missing.json()["detail"]}, name
            assert missing.headers["cache-control"] == "no-store"
            wrong = await client.delete("/healthz")
            assert wrong.status_code == 405, name
            assert wrong.json()["error"] == "method_not_allowed", name
            assert "GET" in wrong.headers["allow"]
            assert (await client.get("/healthz")).headers["cache-control"] == "no-store"
    async with stack.admin() as admin:
        for answer in (
            await admin.get("/api/admin/queues"),
            await admin.get("/api/admin/queues/nope"),
            await admin.put("/api/admin/queues"),
        ):
            assert answer.headers["cache-control"] == "no-store", answer.request.url
            assert set(answer.json()) >= ({"items"} if answer.status_code == 200 else {"error", "detail"})
    async with stack.client("ingress") as ingress:
        webhook = await ingress.post("/webhooks/acme/receive", content=b"{}")
        assert webhook.status_code == 400 and webhook.headers["cache-control"] == "no-store"
    async with stack.client("router") as router:
        for path in ("/", "/console/console.js"):
            page = await router.get(path)
            assert page.status_code == 200 and page.headers["cache-control"] == "no-cache", path
