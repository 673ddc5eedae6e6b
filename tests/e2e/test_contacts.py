"""The contact card through the running router (issue 13 item 4): one person writes on two channels, the operator
reads and edits the card, the admin merges the two contacts, and the card then holds both identities and chats."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from omni_contracts import MessageReceived, UnifiedMessage
from omni_router.adapters.router_instances import INSTANCES
from omni_runtime.database import Database
from omni_runtime.settings import Settings
from tests.support.infra import free_port
from tests.support.outbound import publish
from tests.support.processes import ServiceProcess
from tests.support.stack import ADMIN_TOKEN, Stack, eventually

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


async def desk(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    """Olga online on a `to_all` queue, and two channels into it (`acme`, `whatsapp`): Olga and the channels."""
    async with stack.admin() as admin:
        olga = (await admin.post("/api/admin/operators", json={"name": "Olga", "max_chats": 5})).json()
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
    return olga, channels


async def test_a_contact_card_is_read_edited_and_merged_across_channels(stack: Stack, db: Database) -> None:
    await stack.start("router")
    olga, channels = await desk(stack)
    async with stack.admin() as admin:
        otto = (await admin.post("/api/admin/operators", json={"name": "Otto", "max_chats": 5})).json()
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


async def test_a_merge_is_seen_by_routers_that_kept_the_merged_contact(
    stack: Stack, db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A router keeps the contacts its input found (KnownContacts). A merge makes the merged contact's sender the
    contact kept, and moves its chats there: a router that kept the merged one must not open a chat for it (a second
    open chat, on a contact that is gone). Two customers each write on WhatsApp and on the web; the first pair is merged
    through another router process, the second, whose WhatsApp chat was closed, through this one; then both write on
    WhatsApp again, to this router, which kept both merged contacts."""
    # A contact whose profile is pending is read again after this long: the router keeps it resolved for good.
    monkeypatch.setattr("omni_router.service_layer.inbox.PENDING_CONTACT_SECONDS", 0.2)
    stack.settings = settings = settings.model_copy(update={"router_heartbeat_seconds": 0.5})
    await stack.start("router", "profiles")
    olga, channels = await desk(stack)
    web, wa = channels["acme"]["id"], channels["whatsapp"]["id"]
    web_1 = await writes(stack, db, web, "acme", "cust-1", "hi from the web")
    wa_1 = await writes(stack, db, wa, "whatsapp", "4917600000001", "hi on WhatsApp")
    web_2 = await writes(stack, db, web, "acme", "cust-2", "hi from the web")
    wa_2 = await writes(stack, db, wa, "whatsapp", "4917600000002", "hi on WhatsApp")

    async def resolved() -> bool:
        return await db.contacts.count_documents({"profile_status": "resolved"}) == 4

    await eventually(resolved, timeout=20)
    await asyncio.sleep(0.3)
    for sender, chat in (("4917600000001", wa_1), ("4917600000002", wa_2)):  # read again, and kept resolved
        assert await writes(stack, db, wa, "whatsapp", sender, "still me") == chat

    async def contact_of(chat_id: str) -> str:
        return str((await db.chats.find_one({"_id": chat_id}) or {})["contact_id"])

    kept_1, merged_1, kept_2, merged_2 = [await contact_of(chat) for chat in (web_1, wa_1, web_2, wa_2)]
    async with stack.client("router", olga["token"]) as client:
        assert (await client.post(f"/api/chats/{wa_2}/accept")).status_code == 200
        assert (await client.post(f"/api/chats/{wa_2}/close")).status_code == 200

    # Merged through another router process, which then stops: this one takes every partition again.
    other = ServiceProcess("router", settings.model_copy(update={"router_port": free_port()}), tmp_path)
    try:
        await other.start()
        async with httpx.AsyncClient(base_url=other.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
            merged = await admin.post("/api/admin/contacts/merge", json={"into": kept_1, "from": merged_1})
            assert merged.status_code == 200, merged.text
    except BaseException:
        print(other.tail())
        raise
    finally:
        await other.stop()

    async def alone() -> bool:
        return await db[INSTANCES].count_documents({}) == 1

    await eventually(alone, timeout=15)
    async with stack.admin() as admin:
        merged = await admin.post("/api/admin/contacts/merge", json={"into": kept_2, "from": merged_2})
        assert merged.status_code == 200, merged.text
    assert await db.chats.find_one({"_id": wa_1, "contact_id": kept_1, "open_key": f"{wa}:{kept_1}"}) is not None

    again_1 = await writes(stack, db, wa, "whatsapp", "4917600000001", "me again")
    again_2 = await writes(stack, db, wa, "whatsapp", "4917600000002", "me again")
    assert again_1 == wa_1  # its open chat, moved to the contact kept
    assert again_2 != wa_2 and await contact_of(again_2) == kept_2  # a new chat, of the contact kept
    assert await db.chats.count_documents({"contact_id": {"$in": [merged_1, merged_2]}}) == 0
    assert await db.chats.count_documents({"contact_id": kept_1, "status": {"$ne": "closed"}}) == 2  # web and WhatsApp
