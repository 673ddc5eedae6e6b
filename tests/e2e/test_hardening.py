"""Bad input over real HTTP: files that could run script, JSON too deep, refused edits that must change nothing,
URLs that are not URLs, half-sent requests, unknown routes, and credentials kept out of URLs and logs."""

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from omni_ingress.app import create_app as ingress_app
from omni_router.bootstrap import create_app as router_app
from omni_runtime.database import Database, Document
from omni_runtime.settings import Settings
from omni_runtime.web import HttpServer
from tests.support.events import open_stream
from tests.support.infra import free_port
from tests.support.processes import service_processes
from tests.support.seed import Desk, customer_message, seed_desk
from tests.support.stack import ADMIN_TOKEN, Simulator, Stack, eventually, signed

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


# --- 1 and 4: files --------------------------------------------------------------------------------


async def test_files_are_never_active_content_and_any_name_is_served(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    files = {
        "evil.svg": (SVG, "image/svg+xml"),
        "page.html": (HTML, "text/html"),
        "отчёт.pdf": (PDF, "application/pdf"),
        "two\r\nlines.txt": (b"plain text", "text/plain"),
        "cat.png": (PNG, "image/png"),
    }
    async with simulator.client() as control:
        for n, (data, kind) in enumerate(files.values()):
            stored = await control.put(f"/_sim/files/f{n}", content=data, headers={"Content-Type": kind})
            assert stored.status_code == 201
    await stack.start("ingress", "router", "attachments")
    desk = await seed_desk(stack, operators=1)
    attachments = [
        {"url": f"{simulator.url}/files/f{n}", "content_type": kind, "file_name": name}
        for n, (name, (_data, kind)) in enumerate(files.items())
    ]
    await _customer_writes(stack, desk, customer_message("m-files", type="file", text="see", attachments=attachments))

    async def all_stored() -> list[Document] | None:
        message = await db.messages.find_one({"provider_message_id": "m-files"})
        found: list[Document] = message["attachments"] if message else []
        return found if found and all(a.get("status") == "stored" for a in found) else None

    token = next(iter(desk.operators.values()))
    answers: dict[str, httpx.Response | str] = {}
    async with stack.client("router", token) as client:
        for attachment in await eventually(all_stored, timeout=30):
            answers[attachment["file_name"]] = await _get(client, f"/api/files/{attachment['file_id']}")
    problems = {name: a if isinstance(a, str) else a.status_code for name, a in answers.items()}
    assert all(isinstance(a, httpx.Response) and a.status_code == 200 for a in answers.values()), problems
    served = {name: a for name, a in answers.items() if isinstance(a, httpx.Response)}
    for name, answer in served.items():
        assert answer.content == files[name][0]
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in answer.headers["content-security-policy"]
        assert answer.headers["cache-control"] == "no-store"
    for name in ("evil.svg", "page.html", "отчёт.pdf", "two\r\nlines.txt"):
        assert served[name].headers["content-disposition"].startswith("attachment;"), name
    assert served["cat.png"].headers["content-disposition"] == 'inline; filename="cat.png"'
    assert served["cat.png"].headers["content-type"] == "image/png"
    assert served["отчёт.pdf"].headers["content-disposition"] == (
        "attachment; filename*=utf-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.pdf"
    )
    assert served["two\r\nlines.txt"].headers["content-disposition"] == (
        "attachment; filename*=utf-8''two%0D%0Alines.txt"
    )


# --- 3: JSON nested too deep -----------------------------------------------------------------------


DEEP = b"[" * 1000 + b"]" * 1000
DEEP_OBJECT = b'{"a":' * 200 + b"1" + b"}" * 200


async def test_deeply_nested_json_is_a_400_on_every_json_path(stack: Stack, db: Database) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=1)
    token = next(iter(desk.operators.values()))
    json_type = {"Content-Type": "application/json"}
    statuses: dict[str, tuple[int, Any]] = {}
    async with stack.client("ingress") as ingress:
        for body in (DEEP, DEEP_OBJECT):
            unsigned = await ingress.post("/webhooks/acme/receive", content=body, headers=json_type)
            statuses[f"third-party {len(body)}"] = (unsigned.status_code, unsigned.json())
            signed_body, headers = signed(body, desk.secret)
            signed_answer = await ingress.post("/webhooks/acme/receive", content=signed_body, headers=headers)
            statuses[f"third-party signed {len(body)}"] = (signed_answer.status_code, signed_answer.json())
            for meta in ("messenger", "whatsapp"):
                answer = await ingress.post(
                    f"/webhooks/{meta}", content=body, headers={**json_type, "X-Hub-Signature-256": "sha256=00"}
                )
                statuses[f"{meta} {len(body)}"] = (answer.status_code, answer.json())
    async with stack.admin() as admin:
        for path, method in (
            ("/api/admin/queues", "POST"),
            ("/api/admin/operators", "POST"),
            (f"/api/admin/channels/{desk.channel_id}", "PATCH"),
            ("/api/admin/parked/replay", "POST"),
        ):
            answer = await admin.request(method, path, content=DEEP, headers=json_type)
            statuses[f"{method} {path}"] = (answer.status_code, answer.json())
    async with stack.client("router", token) as client:
        answer = await client.put("/api/operator/status", content=DEEP_OBJECT, headers=json_type)
        statuses["PUT /api/operator/status"] = (answer.status_code, answer.json())
        chat_path = "/api/chats/0123456789abcdef01234567/messages"
        answer = await client.post(chat_path, content=DEEP, headers=json_type)
        statuses[f"POST {chat_path}"] = (answer.status_code, answer.json())
    refused = {where: (status, body.get("error")) for where, (status, body) in statuses.items()}
    assert all(status == 400 for status, _ in refused.values()), refused
    assert {error for _, error in refused.values()} == {"malformed_json"}, refused
    assert await db.messages.count_documents({}) == 0


async def test_text_that_is_not_unicode_is_a_400_on_the_api(stack: Stack, db: Database) -> None:
    await stack.start("router")
    desk = await seed_desk(stack, operators=1)
    body = (
        b'{"name": "Other", "provider": "other", "source": "bot-2", "queue_id": "%s",'
        b' "settings": {"secret": "\\ud800x", "outgoing_url": "https://hooks.example.test/out"}}'
    ) % desk.queue_id.encode()
    async with stack.admin() as admin:
        answer = await admin.post("/api/admin/channels", content=body, headers={"Content-Type": "application/json"})
        assert (answer.status_code, answer.json()["error"]) == (400, "malformed_json")
        assert (await admin.get("/api/admin/channels")).status_code == 200
    assert await db.channels.count_documents({}) == 1


# --- 6 and 7: admin edits validate like creation; outgoing_url is an http(s) URL ----------------------


async def test_a_refused_patch_is_400_and_changes_nothing(stack: Stack, db: Database) -> None:
    await stack.start("router")
    desk = await seed_desk(stack, operators=1)
    operator_id = next(iter(desk.operators))
    refused = {
        f"/api/admin/channels/{desk.channel_id}": [
            {"settings": "x"},
            {"settings": {"outgoing_url": "file:///etc/passwd"}},
            {"settings": {"outgoing_url": "not a url"}},
            {"settings": {"secret": ""}},
            {"queue_id": "no-such-queue"},
            {"name": ""},
            {"is_active": "maybe"},
            {"provider": "telegram"},
        ],
        f"/api/admin/operators/{operator_id}": [
            {"status": "godmode"},
            {"max_chats": 0},
            {"role": "root"},
            {"name": None},
        ],
        f"/api/admin/queues/{desk.queue_id}": [
            {"routing_rule": "nonsense"},
            {"operator_ids": ["no-such-operator"]},
            {"operator_ids": "x"},
            {"completion_timeout_minutes": -1},
        ],
    }
    before = {kind: await db[kind].find_one({}) for kind in ("channels", "operators", "queues")}
    answers: dict[str, Any] = {}
    async with stack.admin() as admin:
        for path, changes in refused.items():
            for change in changes:
                answer = await admin.patch(path, json=change)
                answers[f"{path} {change}"] = (answer.status_code, answer.json().get("error"))
        for kind in ("channels", "operators", "queues"):
            assert (await admin.get(f"/api/admin/{kind}")).status_code == 200
        accepted = await admin.patch(
            f"/api/admin/channels/{desk.channel_id}",
            json={"settings": {"outgoing_url": "https://hooks.example.test/out"}},
        )
        assert accepted.status_code == 200, accepted.text
        assert (await admin.patch(f"/api/admin/operators/{operator_id}", json={"status": "busy"})).status_code == 200
    assert all(answer == (400, "invalid_body") for answer in answers.values()), answers
    after = {kind: await db[kind].find_one({}) for kind in ("operators", "queues")}
    assert after["queues"] == before["queues"]
    assert after["operators"] is not None and before["operators"] is not None
    assert {**after["operators"], "status": "offline"} == {**before["operators"], "status": "offline"}
    channel = await db.channels.find_one({})
    assert channel is not None and before["channels"] is not None
    # Only the accepted change landed; the secret the change did not name is kept.
    assert channel["settings"] == {**before["channels"]["settings"], "outgoing_url": "https://hooks.example.test/out"}


async def test_outgoing_url_must_be_http_and_a_stored_bad_one_fails_at_once(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await stack.start("ingress", "router", "dispatcher")
    desk = await seed_desk(stack, operators=1)
    async with stack.admin() as admin:
        for url in ("file:///etc/passwd", "not a url", "ftp://example.test/x", "http://"):
            answer = await admin.post(
                "/api/admin/channels",
                json={
                    "name": "Bad",
                    "provider": "other",
                    "source": f"bot-{url}",
                    "queue_id": desk.queue_id,
                    "settings": {"secret": "s", "outgoing_url": url},
                },
            )
            assert (answer.status_code, answer.json()["error"]) == (400, "invalid_body"), (url, answer.text)
    assert await db.channels.count_documents({"provider": "other"}) == 0

    # One stored before the check existed: its replies fail at once, with the reason, not after the retries.
    await db.channels.update_one({"_id": desk.channel_id}, {"$set": {"settings.outgoing_url": "file:///etc/passwd"}})
    await _customer_writes(stack, desk, customer_message("in-1"))
    message = await eventually(lambda: db.messages.find_one({"provider_message_id": "in-1", "routed": True}))
    token = next(iter(desk.operators.values()))
    async with stack.client("router", token) as client:
        assert (await client.post(f"/api/chats/{message['chat_id']}/accept")).status_code == 200
        sent = await client.post(f"/api/chats/{message['chat_id']}/messages", json={"text": "hello"})
        assert sent.status_code == 202

    async def failed() -> Document | None:
        return await db.messages.find_one({"_id": sent.json()["id"], "status": "failed"})

    reply = await eventually(failed, timeout=30)
    assert "outgoing_url" in reply["failure_reason"] and "gave up" not in reply["failure_reason"], reply
    async with stack.admin() as admin:
        [parked] = (await admin.get("/api/admin/parked", params={"queue": "dispatcher.outgoing"})).json()["items"]
    assert parked["attempts"] == 1, parked


# --- 8: read deadlines ------------------------------------------------------------------------------


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """Seconds until the server closed the connection (whatever it said first); fails past `seconds`."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(reader.read(), seconds)
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for more than {seconds} s") from None
    return time.monotonic() - started


@pytest.mark.parametrize("protocol", ["h11", "httptools"])
async def test_half_sent_requests_are_closed_at_their_deadline(
    settings: Settings, db: Database, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    deadline = 1.0
    tight = settings.model_copy(
        update={"request_header_timeout_seconds": deadline, "request_body_timeout_seconds": deadline}
    )
    servers = {
        name: HttpServer(
            factory(tight),
            "127.0.0.1",
            free_port(),
            header_timeout=deadline,
            body_timeout=deadline,
            http=protocol,
        )
        for name, factory in (("ingress", ingress_app), ("router", router_app))
    }
    for server in servers.values():
        await server.start()
    try:
        ingress, router = servers["ingress"].port, servers["router"].port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{router}") as client:
            created = await client.post(
                "/api/admin/operators",
                json={"name": "op", "max_chats": 1},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            assert created.status_code == 201
        token = created.json()["token"]
        half_requests = {
            "nothing": (ingress, b""),
            "half the headers": (ingress, b"POST /webhooks/acme/receive HTTP/1.1\r\nHost: x\r\nContent-Ty"),
            "half a body": (
                ingress,
                b"POST /webhooks/acme/receive HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"message_id":',
            ),
            "router: half the headers": (router, b"GET /api/chats HTTP/1.1\r\nHost: x\r\nAuthoriz"),
            "router: half a body": (
                router,
                b"PUT /api/operator/status HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n"
                + f"Authorization: Bearer {token}\r\n\r\n".encode()
                + b'{"status":',
            ),
            "a second request, half sent": (
                ingress,
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHo",
            ),
        }
        connections = {}
        for what, (port, data) in half_requests.items():
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            await writer.drain()
            connections[what] = (reader, writer)
        # A stream answering for longer than both deadlines is not cut: the deadlines are for reading requests.
        async with open_stream(f"http://127.0.0.1:{router}", token) as stream:
            waited = await asyncio.gather(
                *(_closed_within(reader, deadline + 4.0) for reader, _ in connections.values())
            )
            assert all(seconds >= deadline * 0.8 for seconds in waited), dict(zip(connections, waited, strict=True))
            await asyncio.sleep(0.5)
            with pytest.raises(TimeoutError):  # still open, nothing to say
                await stream.next(timeout=0.2)
        for _reader, writer in connections.values():
            writer.close()

        # A client that goes away mid-body is no error of ours: nothing is logged at ERROR.
        caplog.clear()
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", ingress)
                writer.write(half_requests["half a body"][1])
                await writer.drain()
                await asyncio.sleep(0.1)
                writer.close()
            await asyncio.sleep(0.5)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ingress}") as client:
                assert (await client.get("/healthz")).status_code == 200
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [], [r.getMessage() for r in errors]
    finally:
        for server in servers.values():
            await server.stop()


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


# --- 11: the live stream's credentials ------------------------------------------------------------------


async def test_the_stream_opens_with_a_single_use_ticket(stack: Stack, db: Database) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=2)
    operator_id, token = next(iter(desk.operators.items()))
    async with stack.client("router", token) as client:
        issued = await client.post("/api/events/ticket")
        assert issued.status_code == 200, issued.text
        assert set(issued.json()) == {"ticket", "expires_at"}
        ticket, spare = issued.json()["ticket"], (await client.post("/api/events/ticket")).json()["ticket"]
    assert token not in (ticket, spare) and ticket != spare and len(ticket) >= 32

    # The ticket is the operator's: the stream carries their notifications (and only theirs, as with the token).
    async with open_stream(stack.url("router"), None, ticket=ticket) as stream:
        await _customer_writes(stack, desk, customer_message("m-1"))
        note = await stream.next(timeout=5.0)
    assert note.event == "chat.offered" and note.body["operator_id"] == operator_id

    async with stack.client("router") as anonymous:
        spent = await anonymous.get("/api/events", params={"ticket": ticket})
        assert (spent.status_code, spent.json()["error"]) == (401, "unauthorized")
        assert (await anonymous.get("/api/events", params={"ticket": "made-up"})).status_code == 401
        assert (await anonymous.get("/api/events")).status_code == 401
        assert (await anonymous.post("/api/events/ticket")).status_code == 401
        assert (await anonymous.post("/api/events/ticket", headers={"Authorization": "Bearer nope"})).status_code == 401
    async with open_stream(stack.url("router"), None, ticket=spare):
        pass  # an unused ticket still opens its one stream
    async with stack.client("router", token) as client:
        late = (await client.post("/api/events/ticket")).json()["ticket"]
    await db.stream_tickets.update_many({}, {"$set": {"expires_at": time.time() - 1}})
    async with stack.client("router") as anonymous:
        assert (await anonymous.get("/api/events", params={"ticket": late})).status_code == 401
    assert await db.stream_tickets.count_documents({}) == 0, "spent and expired tickets are not kept"


async def test_no_credential_reaches_the_logs(settings: Settings, tmp_path: Path) -> None:
    logged = settings.model_copy(update={"access_log": True})
    async with service_processes(logged, tmp_path, "router") as running:
        async with httpx.AsyncClient(base_url=running["router"].url) as admin:
            created = await admin.post(
                "/api/admin/operators",
                json={"name": "op", "max_chats": 1},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            token = created.json()["token"]
            ticket = (await admin.post("/api/events/ticket", headers={"Authorization": f"Bearer {token}"})).json()[
                "ticket"
            ]
        async with open_stream(running["router"].url, None, ticket=ticket):
            pass
        async with open_stream(running["router"].url, token, in_query=True):
            pass
        async with httpx.AsyncClient(base_url=running["router"].url) as client:
            assert (await client.get("/api/events", params={"ticket": ticket})).status_code == 401
            assert (await client.get("/api/events", params={"token": "wrong-" + token})).status_code == 401
    log = (tmp_path / "router.log").read_text()
    assert "/api/events?" in log, "the access log is on, so the stream's requests are in it"
    for secret in (token, ticket, ADMIN_TOKEN):
        assert secret not in log
    assert json.dumps("[redacted]")[1:-1] in log
