"""The contact card through the running router (issue 13 item 4): one person writes on two channels, the operator
reads and edits the card, the admin merges the two contacts, and the card then holds both identities and chats."""

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from omni_contracts import MessageReceived, UnifiedMessage
from omni_runtime.database import Database
from tests.support.outbound import publish
from tests.support.stack import Stack, eventually

pytestmark = pytest.mark.e2e


async def writes(stack: Stack, db: Database, channel_id: str, provider: str, sender: str, text: str) -> str:
    """A customer's message as ingress publishes it; its chat's id."""
    provider_message_id = uuid4().hex
    message = UnifiedMessage(
        provider=provider,
        channel_id=channel_id,
        provider_message_id=provider_message_id,
        sender=sender,
        sender_name="Ann Customer",
        recipient="bot",
        sent_at=datetime.now(UTC),
        text=text,
    )
    await publish(stack.settings, MessageReceived(message=message))
    stored = await eventually(
        lambda: db.messages.find_one({"provider_message_id": provider_message_id, "routed": True}), timeout=20
    )
    return str(stored["chat_id"])


async def test_a_contact_card_is_read_edited_and_merged_across_channels(stack: Stack, db: Database) -> None:
    await stack.start("router")
    async with stack.admin() as admin:
        olga = (await admin.post("/api/admin/operators", json={"name": "Olga", "max_chats": 5})).json()
        otto = (await admin.post("/api/admin/operators", json={"name": "Otto", "max_chats": 5})).json()
        queue = (
            await admin.post(
                "/api/admin/queues", json={"name": "s", "routing_rule": "to_all", "operator_ids": [olga["id"]]}
            )
        ).json()
        channels: dict[str, Any] = {}
        for provider, source in (("acme", "bot-1"), ("whatsapp", "5566")):
            settings = {"secret": "s", "outgoing_url": "http://127.0.0.1:9/x"} if provider == "acme" else {}
            if provider == "whatsapp":
                settings = {"access_token": "t", "app_secret": "s", "verify_token": "v"}
            created = await admin.post(
                "/api/admin/channels",
                json={
                    "name": provider,
                    "provider": provider,
                    "source": source,
                    "queue_id": queue["id"],
                    "settings": settings,
                },
            )
            assert created.status_code == 201, created.text
            channels[provider] = created.json()
    async with stack.client("router", olga["token"]) as client:
        assert (await client.put("/api/operator/status", json={"status": "online"})).status_code == 200
    web_chat = await writes(stack, db, channels["acme"]["id"], "acme", "cust-1", "hi from the web")
    wa_chat = await writes(stack, db, channels["whatsapp"]["id"], "whatsapp", "4917612345678", "hi on WhatsApp")

    async with stack.client("router", olga["token"]) as olga_client, stack.client("router", otto["token"]) as otto_c:
        web = (await olga_client.get(f"/api/chats/{web_chat}")).json()
        wa = (await olga_client.get(f"/api/chats/{wa_chat}")).json()
        assert web["contact_id"] == web["contact"]["id"] and wa["contact_id"] != web["contact_id"]
        card = await olga_client.get(f"/api/contacts/{web['contact_id']}")
        assert card.status_code == 200
        assert card.json()["identities"] == [
            {"channel_id": channels["acme"]["id"], "provider": "acme", "external_id": "cust-1"}
        ]
        assert (await otto_c.get(f"/api/contacts/{web['contact_id']}")).status_code == 404  # sees none of its chats
        path = f"/api/contacts/{web['contact_id']}"
        edited = await olga_client.patch(path, json={"name": "Ann Example", "attributes": {"email": "ann@example.com"}})
        assert edited.status_code == 200, edited.text
        for refused in (
            {"name": "X", "attributes": {"email": ["not", "a", "string"]}},
            {"name": "X", "attributes": {"nested": {"a": "b"}}},
            {"name": "X", "color": "red"},
            {"name": ""},
            {},
        ):
            answer = await olga_client.patch(path, json=refused)
            assert (answer.status_code, answer.json()["error"]) == (400, "invalid_body"), refused
        unchanged = (await olga_client.get(path)).json()
        assert (unchanged["name"], unchanged["attributes"]) == ("Ann Example", {"email": "ann@example.com"})
        assert (await olga_client.get(f"/api/chats/{web_chat}")).json()["contact"]["name"] == "Ann Example"
        assert (
            await olga_client.patch(f"/api/contacts/{wa['contact_id']}", json={"attributes": {"phone": "+49"}})
        ).status_code == 200

        async with stack.admin() as admin:
            body = {"into": web["contact_id"], "from": wa["contact_id"]}
            assert (await olga_client.post("/api/admin/contacts/merge", json=body)).status_code in (401, 403)
            merged = await admin.post("/api/admin/contacts/merge", json=body)
            assert merged.status_code == 200, merged.text
            again = await admin.post("/api/admin/contacts/merge", json=body)
            assert again.json() == merged.json()  # safe to repeat
            assert (
                await admin.post("/api/admin/contacts/merge", json={"into": "nope", "from": web["contact_id"]})
            ).status_code == 404
        kept = merged.json()
        assert [i["provider"] for i in kept["identities"]] == ["acme", "whatsapp"]
        assert kept["attributes"] == {"email": "ann@example.com", "phone": "+49"}
        assert (await olga_client.get(f"/api/contacts/{wa['contact_id']}")).status_code == 404
        chats = (await olga_client.get(f"{path}/chats")).json()["items"]
        assert [c["id"] for c in chats] == [wa_chat, web_chat]  # newest first, across channels
        assert {c["contact_id"] for c in chats} == {web["contact_id"]}
        assert (await otto_c.get(f"{path}/chats")).status_code == 404
