"""The operator's workplace through the running services: a note reaches the other operator (queue and stream) and
never the customer, labels are defined, put on a chat and filtered by, canned responses are listed and filled for a
chat, a supervisor lists another operator's chats, and search finds what each may see."""

from typing import Any

import pytest

from omni_runtime.database import Database
from omni_runtime.settings import Settings
from tests.support.events import open_stream
from tests.support.seed import Desk, customer_message, seed_desk
from tests.support.stack import OperatorInbox, Simulator, Stack, eventually, signed

pytestmark = pytest.mark.e2e


async def _write_in(stack: Stack, desk: Desk, db: Database, message_id: str, text: str, sender: str) -> str:
    raw, headers = signed(customer_message(message_id, text=text, sender=sender), desk.secret)
    async with stack.client("ingress") as ingress:
        assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200
    message = await eventually(lambda: db.messages.find_one({"provider_message_id": message_id, "routed": True}))
    chat_id: str = message["chat_id"]
    return chat_id


async def test_notes_labels_and_another_operators_chats(
    stack: Stack, db: Database, simulator: Simulator, settings: Settings
) -> None:
    await stack.start("ingress", "router", "dispatcher")
    desk = await seed_desk(stack, operators=2, outgoing_url=f"{simulator.url}/thirdparty/acme/outgoing")
    (ann, ann_token), (bob, bob_token) = desk.operators.items()
    chat_id = await _write_in(stack, desk, db, "in-1", "my parcel is late", "cust-1")
    other_chat = await _write_in(stack, desk, db, "in-2", "hello", "cust-2")
    async with stack.admin() as admin:
        boss = (await admin.post("/api/admin/operators", json={"name": "Boss", "role": "supervisor"})).json()
        assert (await admin.post("/api/admin/labels", json={"name": "billing", "color": "#FA0"})).status_code == 201
        duplicate = await admin.post("/api/admin/labels", json={"name": "billing", "color": "#000"})
        assert (duplicate.status_code, duplicate.json()["error"]) == (409, "label_exists")
        assert (await admin.post("/api/admin/labels", json={"name": "x", "color": "red"})).status_code == 400
        labels = (await admin.get("/api/admin/labels")).json()["items"]
        assert [(x["name"], x["color"]) for x in labels] == [("billing", "#fa0")]

    async with (
        OperatorInbox(settings.amqp_url) as inbox,
        open_stream(stack.url("router"), bob_token) as bob_stream,
        open_stream(stack.url("router"), ann_token) as ann_stream,
        stack.client("router", ann_token) as ann_client,
    ):
        await inbox.drain(bob, quiet=0.2)
        await bob_stream.collect(quiet=0.3)
        assert (await ann_client.post(f"/api/chats/{chat_id}/accept")).status_code == 200
        answer = await ann_client.post(f"/api/chats/{chat_id}/notes", json={"text": "VIP, be kind"})
        assert answer.status_code == 201, answer.text
        note = answer.json()
        assert set(note) == {"id", "chat_id", "author_id", "text", "created_at"}
        assert (note["chat_id"], note["author_id"], note["text"]) == (chat_id, ann, "VIP, be kind")
        assert (await ann_client.post(f"/api/chats/{chat_id}/notes", json={"text": " "})).status_code == 400
        # bob was offered the chat; ann took it: he sees it no more, so hears no note of it (and may not write one)
        async with stack.client("router", bob_token) as bob_client:
            assert (await bob_client.post(f"/api/chats/{chat_id}/notes", json={"text": "hi"})).status_code == 404
            assert (await bob_client.post(f"/api/chats/{other_chat}/notes", json={"text": "mine"})).status_code == 201

        # on the other chat, still offered to both, bob's note reaches ann on her queue
        async def ann_heard() -> list[dict[str, Any]]:
            return [n for n in await inbox.drain(ann, quiet=0.2) if n["event"] == "note.new"]

        [heard] = await eventually(ann_heard)
        assert (heard["chat_id"], heard["data"]["note"]["text"]) == (other_chat, "mine")
        streamed = [n.body for n in await ann_stream.collect(quiet=0.5) if n.event == "note.new"]
        assert [n["event_id"] for n in streamed] == [heard["event_id"]]  # the same notification on her stream
        seen_by_bob = [n.event for n in await bob_stream.collect(quiet=0.5)]
        assert "note.new" not in seen_by_bob  # his own note: not told to him

        conversation = (await ann_client.get(f"/api/chats/{chat_id}/messages")).json()["items"]
        assert [(m["direction"], m["type"], m["author_id"]) for m in conversation] == [
            ("incoming", "text", None),
            ("internal", "note", ann),
        ]
        assert await simulator.requests() == []  # nothing reached the messenger

        labelled = await ann_client.put(f"/api/chats/{chat_id}/labels", json={"labels": ["billing"]})
        assert labelled.status_code == 200 and labelled.json()["labels"] == ["billing"]
        unknown = await ann_client.put(f"/api/chats/{chat_id}/labels", json={"labels": ["billing", "nope"]})
        assert (unknown.status_code, unknown.json()["error"]) == (422, "unknown_labels")
        assert "nope" in unknown.json()["detail"]
        filtered = (await ann_client.get("/api/chats", params={"label": "billing"})).json()["items"]
        assert [c["id"] for c in filtered] == [chat_id]
        assert (await ann_client.get("/api/chats", params={"operator_id": bob})).status_code == 403

    async with stack.client("router", boss["token"]) as boss_client:
        of_bob = (await boss_client.get("/api/chats", params={"operator_id": bob})).json()["items"]
        assert [c["id"] for c in of_bob] == [other_chat]  # offered to him; the other one ann holds
        of_ann = (await boss_client.get("/api/chats", params={"operator_id": ann, "label": "billing"})).json()
        assert [c["id"] for c in of_ann["items"]] == [chat_id]


async def test_canned_responses_and_search(stack: Stack, db: Database) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=1)
    [(_ann, ann_token)] = desk.operators.items()
    chat_id = await _write_in(stack, desk, db, "in-1", "Where is my PARCEL?", "cust-1")
    async with stack.admin() as admin:
        other_queue = (await admin.post("/api/admin/queues", json={"name": "sales"})).json()["id"]
        loner = (await admin.post("/api/admin/operators", json={"name": "Loner"})).json()
        hello = await admin.post("/api/admin/canned-responses", json={"shortcut": "hi", "text": "Hi {{contact.name}}"})
        assert hello.status_code == 201 and hello.json()["scope"] == "global"
        queue_one = {
            "shortcut": "parcel",
            "text": "{{operator.name}} of {{channel.name}}: {{x}}",
            "queue_id": desk.queue_id,
        }
        assert (await admin.post("/api/admin/canned-responses", json=queue_one)).json()["scope"] == "queue"
        elsewhere = {"shortcut": "sales", "text": "not for support", "queue_id": other_queue}
        assert (await admin.post("/api/admin/canned-responses", json=elsewhere)).status_code == 201
        refused = await admin.patch(f"/api/admin/canned-responses/{hello.json()['id']}", json={"shortcut": "a b"})
        assert refused.status_code == 400
        assert (await admin.get(f"/api/admin/canned-responses/{hello.json()['id']}")).json()["shortcut"] == "hi"

    async with stack.client("router", ann_token) as client:
        mine = await client.post("/api/canned-responses", json={"shortcut": "bye", "text": "Bye!"})
        assert mine.status_code == 201 and mine.json()["scope"] == "personal"
        usable = (await client.get("/api/canned-responses")).json()["items"]
        assert sorted(r["shortcut"] for r in usable) == ["bye", "hi", "parcel"]
        assert [
            r["shortcut"] for r in (await client.get("/api/canned-responses", params={"q": "BY"})).json()["items"]
        ] == ["bye"]
        assert (
            await client.patch(f"/api/canned-responses/{hello.json()['id']}", json={"text": "x"})
        ).status_code == 403
        queue_id = next(r["id"] for r in usable if r["shortcut"] == "parcel")
        filled = (await client.get(f"/api/chats/{chat_id}/canned-responses/{queue_id}")).json()
        assert filled == {"text": "op0 of Acme chat: {{x}}"}
        greeting = (await client.get(f"/api/chats/{chat_id}/canned-responses/{hello.json()['id']}")).json()
        assert greeting == {"text": "Hi Ann Customer"}

        hits = (await client.get("/api/search", params={"q": "parcel"})).json()
        assert [(h["kind"], h["chat_id"], h["text"]) for h in hits["items"]] == [
            ("message", chat_id, "Where is my PARCEL?")
        ]
        contact = (await client.get("/api/search", params={"q": "ann customer"})).json()["items"]
        assert [(h["kind"], h["chat_id"]) for h in contact] == [("contact", chat_id)]
        assert (await client.get("/api/search", params={"q": ""})).status_code == 400
    async with stack.client("router", loner["token"]) as client:
        assert (await client.get("/api/search", params={"q": "parcel"})).json()["items"] == []
        assert (await client.patch(f"/api/canned-responses/{mine.json()['id']}", json={"text": "x"})).status_code == 404
        assert (await client.get(f"/api/chats/{chat_id}/canned-responses/{queue_id}")).status_code == 404
