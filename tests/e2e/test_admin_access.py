"""Scoped, revocable API tokens and the audit log through the running router (issue 14 item 5): a token answered
once, scopes checked per endpoint, a revocation refused at once by another router process, every admin write
(refused ones too) in the audit log, newest first, without bodies or secrets."""

import json

import httpx
import pytest

from omni_runtime.database import Database
from tests.support.routing import another_router
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


async def test_tokens_scopes_revocation_across_routers_and_the_audit_log(stack: Stack, db: Database) -> None:
    await stack.start("router")
    async with stack.admin() as bootstrap:
        made = await bootstrap.post("/api/admin/tokens", json={"name": "ops", "scopes": ["admin"]})
        assert made.status_code == 201, made.text
        ops = made.json()
        assert set(ops) == {"id", "name", "scopes", "created_at", "token"}
        reports = (await bootstrap.post("/api/admin/tokens", json={"name": "bi", "scopes": ["reports:read"]})).json()
        bad = await bootstrap.post("/api/admin/tokens", json={"name": "x", "scopes": ["root"]})
        assert (bad.status_code, bad.json()["error"]) == (400, "invalid_body")
        listed = (await bootstrap.get("/api/admin/tokens")).json()["items"]
    assert [(t["name"], t["scopes"]) for t in listed] == [("ops", ["admin"]), ("bi", ["reports:read"])]
    assert all("token" not in t and "token_hash" not in t for t in listed)
    stored = await db.api_tokens.find_one({"_id": ops["id"]})
    assert stored is not None and ops["token"] not in json.dumps(stored, default=str)

    async with stack.client("router", ops["token"]) as admin:
        queue = await admin.post("/api/admin/queues", json={"name": "support"})
        assert queue.status_code == 201
        operator = (await admin.post("/api/admin/operators", json={"name": "Ann"})).json()
    async with stack.client("router", reports["token"]) as bi:
        refused = await bi.post("/api/admin/queues", json={"name": "sales"})
        assert refused.status_code == 403
        assert refused.json() == {
            "error": "insufficient_scope",
            "detail": "this token's scopes (reports:read) do not include admin",
        }
        # reports:read opens the reports (and nothing else: the queues' list above and below is admin's)
        summary = await bi.get("/api/admin/reports/summary")
        assert summary.status_code == 200, summary.text
        assert {"chats_opened", "chats_closed", "csat", "by_day"} <= set(summary.json())
        assert (await bi.get("/api/admin/reports/chats.csv")).status_code == 200
        listed_by_bi = await bi.get("/api/admin/queues")
        assert (listed_by_bi.status_code, listed_by_bi.json()["error"]) == (403, "insufficient_scope")
        assert (await bi.get("/api/admin/audit")).status_code == 403
    async with stack.client("router", operator["token"]) as as_operator:
        assert (await as_operator.delete(f"/api/admin/queues/{queue.json()['id']}")).status_code == 403

    async with another_router(stack.settings) as elsewhere, httpx.AsyncClient(base_url=elsewhere) as other:
        as_ops = {"Authorization": f"Bearer {ops['token']}"}
        assert (await other.get("/api/admin/queues", headers=as_ops)).status_code == 200
        async with stack.admin() as bootstrap:
            assert (await bootstrap.delete(f"/api/admin/tokens/{ops['id']}")).status_code == 204
        gone = await other.get("/api/admin/queues", headers=as_ops)  # the other router, at once
        assert (gone.status_code, gone.json()["error"]) == (401, "unauthorized")
        renamed = await other.patch(f"/api/admin/queues/{queue.json()['id']}", json={"name": "x"}, headers=as_ops)
        assert renamed.status_code == 401

    async with stack.admin() as bootstrap:
        page = (await bootstrap.get("/api/admin/audit", params={"limit": 6})).json()
        rest = (await bootstrap.get("/api/admin/audit", params={"cursor": page["next_cursor"]})).json()
    entries = page["items"] + rest["items"]
    assert rest["next_cursor"] is None
    seen = [(e["method"], e["path"], e["actor"]["name"], e["status"]) for e in entries]
    queue_id = queue.json()["id"]
    assert seen == [
        ("PATCH", f"/api/admin/queues/{queue_id}", None, 401),
        ("DELETE", f"/api/admin/tokens/{ops['id']}", "ADMIN_TOKEN", 204),
        ("DELETE", f"/api/admin/queues/{queue_id}", None, 403),
        ("POST", "/api/admin/queues", "bi", 403),
        ("POST", "/api/admin/operators", "ops", 201),
        ("POST", "/api/admin/queues", "ops", 201),
        ("POST", "/api/admin/tokens", "ADMIN_TOKEN", 400),
        ("POST", "/api/admin/tokens", "ADMIN_TOKEN", 201),
        ("POST", "/api/admin/tokens", "ADMIN_TOKEN", 201),
    ]
    by_ops = entries[5]
    assert by_ops["actor"] == {"token_id": ops["id"], "name": "ops"} and by_ops["target_id"] == queue_id
    assert entries[1]["target_id"] == ops["id"] and entries[4]["target_id"] == operator["id"]
    assert entries[-1]["target_id"] == ops["id"]
    dumped = json.dumps(entries)
    for secret in (ops["token"], reports["token"], operator["token"], "support"):
        assert secret not in dumped  # neither a token nor anything of a body
