"""Operators fetch attachment bytes through the router, and only for chats they may see."""

import pytest

from omni_runtime.database import Database
from tests.support.seed import customer_message, seed_desk
from tests.support.stack import Simulator, Stack, eventually, signed

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


async def test_an_attachment_is_served_to_its_chat_s_operators_only(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    async with simulator.client() as control:
        stored = await control.put("/_sim/files/cat.png", content=PNG, headers={"Content-Type": "image/png"})
        assert stored.status_code == 201
    await stack.start("ingress", "router", "attachments")
    desk = await seed_desk(stack, operators=2, online=1)
    offered, other = list(desk.operators)
    body = customer_message(
        "m-file",
        type="image",
        text="my cat",
        attachments=[{"url": f"{simulator.url}/files/cat.png", "content_type": "image/png", "file_name": "cat.png"}],
    )
    async with stack.client("ingress") as ingress:
        raw, headers = signed(body, desk.secret)
        assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200

    async def file_id() -> str | None:
        message = await db.messages.find_one({"provider_message_id": "m-file"})
        attachment = message["attachments"][0] if message else {}
        return attachment.get("file_id") if attachment.get("status") == "stored" else None

    fid = await eventually(file_id, timeout=20)
    async with stack.client("router", desk.operators[offered]) as client:
        answer = await client.get(f"/api/files/{fid}")
        assert answer.status_code == 200
        assert answer.content == PNG
        assert answer.headers["content-type"] == "image/png"
        chat = await db.chats.find_one({})
        assert chat is not None
        conversation = (await client.get(f"/api/chats/{chat['_id']}/messages")).json()
        assert conversation["items"][0]["attachments"][0]["file_id"] == fid
        assert (await client.get("/api/files/0123456789abcdef01234567")).status_code == 404
        assert (await client.get("/api/files/not-an-id")).status_code == 404
    async with stack.client("router", desk.operators[other]) as client:
        refused = await client.get(f"/api/files/{fid}")
        assert refused.status_code == 404
        assert refused.json()["error"] == "file_not_found"
    async with stack.client("router") as anonymous:
        assert (await anonymous.get(f"/api/files/{fid}")).status_code == 401
