"""Ingress refuses bad webhooks with the right status and leaves nothing in the broker or the database."""

import json

import pytest

from omni_runtime.database import Database
from omni_runtime.settings import Settings
from tests.support.infra import Infra
from tests.support.seed import Desk, customer_message, seed_desk
from tests.support.stack import OperatorInbox, Stack, eventually, signed
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.e2e


async def _nothing_left(settings: Settings, db: Database) -> None:
    async with OperatorInbox(settings.amqp_url) as inbox:
        assert await inbox.router_input_length(settings) == 0
    assert await db.messages.count_documents({}) == 0
    assert await db.chats.count_documents({}) == 0


async def _post(
    stack: Stack, desk: Desk, raw: bytes, headers: dict[str, str], provider: str | None = None
) -> tuple[int, dict[str, str]]:
    async with stack.client("ingress") as ingress:
        answer = await ingress.post(f"/webhooks/{provider or desk.provider}/receive", content=raw, headers=headers)
    return answer.status_code, answer.json()


async def test_signature_channel_schema_and_size_are_checked(stack: Stack, db: Database, settings: Settings) -> None:
    await stack.start("ingress")
    await stack.start("router")
    desk = await seed_desk(stack)
    await stack.stop("router")  # anything wrongly queued would stay visible in the router's inbox
    body = customer_message("m-bad")
    raw, headers = signed(body, desk.secret)

    wrong = {**headers, "X-Omni-Signature": "sha256=" + "0" * 64}
    assert await _post(stack, desk, raw, wrong) == (
        401,
        {"error": "bad_signature", "detail": "signature missing or wrong"},
    )
    missing = {"Content-Type": "application/json"}
    assert (await _post(stack, desk, raw, missing))[0] == 401
    tampered = raw.replace(b"hello", b"hellO")
    assert (await _post(stack, desk, tampered, headers))[0] == 401

    raw_unknown, headers_unknown = signed({**body, "recipient": "nobody"}, desk.secret)
    status, answer = await _post(stack, desk, raw_unknown, headers_unknown)
    assert (status, answer["error"]) == (404, "unknown_channel")

    status, answer = await _post(stack, desk, *signed(b"{not json", desk.secret))
    assert (status, answer["error"]) == (400, "malformed_json")
    no_id = {k: v for k, v in body.items() if k != "message_id"}
    status, answer = await _post(stack, desk, *signed(no_id, desk.secret))
    assert (status, answer["error"]) == (400, "invalid_payload") and "message_id" in answer["detail"]
    bad_time = {**body, "timestamp": "yesterday"}
    assert (await _post(stack, desk, *signed(bad_time, desk.secret)))[0] == 400
    empty = {**body, "text": None}
    assert (await _post(stack, desk, *signed(empty, desk.secret)))[0] == 400

    huge = json.dumps({**body, "text": "x" * (1024 * 1024)}).encode()
    status, answer = await _post(stack, desk, *signed(huge, desk.secret))
    assert (status, answer["error"]) == (413, "payload_too_large")

    status, answer = await _post(stack, desk, raw, headers, provider="telegram")
    assert status == 404
    await _nothing_left(settings, db)


async def test_inactive_channel_is_unknown(stack: Stack, db: Database, settings: Settings) -> None:
    await stack.start("router")
    desk = await seed_desk(stack)
    async with stack.admin() as admin:
        assert (
            await admin.patch(f"/api/admin/channels/{desk.channel_id}", json={"is_active": False})
        ).status_code == 200
    await stack.stop("router")
    await stack.start("ingress")
    assert (await _post(stack, desk, *signed(customer_message("m-x"), desk.secret)))[0] == 404
    await _nothing_left(settings, db)


async def test_broker_unreachable_answers_503_and_recovers(
    stack: Stack, db: Database, settings: Settings, infra: Infra, vhost: str
) -> None:
    proxy = TcpProxy(infra.amqp_host, infra.amqp_port)
    await proxy.start()
    try:
        await stack.start("router")
        desk = await seed_desk(stack)
        await stack.stop("router")
        stack.settings = settings.model_copy(update={"amqp_url": f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost}"})
        await stack.start("ingress")
        stack.settings = settings
        proxy.cut()
        raw, headers = signed(customer_message("m-503"), desk.secret)
        status, answer = await _post(stack, desk, raw, headers)
        assert (status, answer["error"]) == (503, "broker_unavailable")
        async with stack.client("ingress") as ingress:
            assert (await ingress.get("/readyz")).status_code == 503
        await _nothing_left(settings, db)

        proxy.restore()  # the messenger retries once the link is back

        async def accepted() -> bool:
            return (await _post(stack, desk, raw, headers))[0] == 200

        await eventually(accepted, timeout=20, interval=0.5)
        async with OperatorInbox(settings.amqp_url) as inbox:
            assert await inbox.router_input_length(settings) == 1
    finally:
        await stack.close()
        await proxy.close()
