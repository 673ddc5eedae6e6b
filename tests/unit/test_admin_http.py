"""The admin API's HTTP layer on the fakes (no broker, no database): `require_scope` on an endpoint, and the
audit trail recording a refused write and a creation's id."""

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_router.bootstrap import create_app
from omni_router.domain.tokens import TokenSettings
from omni_router.entrypoints.context import require_scope
from omni_runtime.service import Slot
from omni_runtime.settings import Settings
from tests.support.world import ADMIN_TOKEN, World


@require_scope("reports:read")
async def report(request: Request) -> Response:
    """A report.
    ---
    summary: a report
    """
    return JSONResponse({"ok": True})


async def test_require_scope_and_the_audit_trail(world: World) -> None:
    app = create_app(Settings(admin_token=ADMIN_TOKEN))
    app.router.routes.insert(0, Route("/api/admin/reports/x", report, methods=["GET", "POST"]))
    slot: Slot[object] = app.state.service
    slot.set(world.router.services)
    _, bi = await world.router.tokens.create(TokenSettings(name="bi", scopes=["reports:read"]))
    assert report.__doc__ is not None and "summary: a report" in report.__doc__

    async def call(method: str, path: str, token: str, **more: object) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://router", headers=headers) as client:
            return await client.request(method, path, **more)  # type: ignore[arg-type]

    assert (await call("GET", "/api/admin/reports/x", bi)).json() == {"ok": True}
    assert (await call("GET", "/api/admin/reports/x", ADMIN_TOKEN)).status_code == 200
    assert (await call("GET", "/api/admin/reports/x", "nope")).status_code == 401
    assert (await call("GET", "/api/admin/queues", bi)).json()["error"] == "insufficient_scope"
    created = await call("POST", "/api/admin/queues", ADMIN_TOKEN, json={"name": "support"})
    assert (await call("POST", "/api/admin/reports/x", bi)).status_code == 200
    entries, _ = await world.router.audit.page(None, 10)
    assert [(e.method, e.path, e.name, e.target_id, e.status) for e in entries] == [
        ("POST", "/api/admin/reports/x", "bi", None, 200),
        ("POST", "/api/admin/queues", "ADMIN_TOKEN", created.json()["id"], 201),
    ]
