"""Telegram end to end: real-format updates by webhook and by long polling, replies through the Bot API, register."""

import asyncio
import itertools
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from gridfs import AsyncGridFSBucket

from omni_runtime.database import Database, Document
from omni_runtime.settings import Settings
from tests.support.infra import Infra
from tests.support.stack import OperatorInbox, Simulator, Stack, eventually
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.e2e

BOT_ID = "7012345678"
TOKEN = f"{BOT_ID}:AAF-e2e_Test-token_0123456789"
SECRET = "e2e-Secret_token-42"
ANN = {"id": 1111, "is_bot": False, "first_name": "Ann", "last_name": "Customer", "username": "ann_c"}
PHOTO = bytes(range(256)) * 1200  # 300 KiB, more than one GridFS chunk
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def quick_polling(settings: Settings) -> None:
    """Long polls of a second and channel discovery several times a second, so restarts take no time."""
    settings.telegram_poll_timeout_seconds = 1
    settings.telegram_poll_discovery_seconds = 0.3


def message_update(
    update_id: int | None, message_id: int, sender: dict[str, Any] = ANN, **content: Any
) -> dict[str, Any]:
    """An Update as the Bot API sends it (private chat: chat.id is the user's id)."""
    chat = {k: v for k, v in sender.items() if k != "is_bot" and k != "language_code"} | {"type": "private"}
    update: dict[str, Any] = {
        "message": {
            "message_id": message_id,
            "from": sender,
            "chat": chat,
            "date": 1_767_000_000 + message_id,
            **content,
        }
    }
    return update if update_id is None else {"update_id": update_id, **update}


def photo_content(caption: str) -> dict[str, Any]:
    return {
        "photo": [
            {"file_id": "photo-small", "file_unique_id": "AQADs", "file_size": 1200, "width": 90, "height": 68},
            {
                "file_id": "photo-large",
                "file_unique_id": "AQADl",
                "file_size": len(PHOTO),
                "width": 1280,
                "height": 960,
            },
        ],
        "caption": caption,
    }


@dataclass
class TelegramDesk:
    channel_id: str
    operator_id: str
    operator_token: str


async def telegram_desk(stack: Stack, *, mode: str = "webhook", secret: str | None = SECRET) -> TelegramDesk:
    """One online operator, a `to_all` queue and a Telegram channel created through the admin API."""
    settings: dict[str, Any] = {"bot_token": TOKEN, "mode": mode}
    if secret is not None:
        settings["secret_token"] = secret
    async with stack.admin() as admin:
        operator = (await admin.post("/api/admin/operators", json={"name": "op", "max_chats": 5})).json()
        queue = await admin.post(
            "/api/admin/queues", json={"name": "tg", "routing_rule": "to_all", "operator_ids": [operator["id"]]}
        )
        channel = await admin.post(
            "/api/admin/channels",
            json={
                "name": "Acme bot",
                "provider": "telegram",
                "source": BOT_ID,
                "queue_id": queue.json()["id"],
                "settings": settings,
            },
        )
        assert channel.status_code == 201, channel.text
        assert TOKEN not in channel.text and SECRET not in channel.text
    async with stack.client("router", operator["token"]) as client:
        assert (await client.put("/api/operator/status", json={"status": "online"})).status_code == 200
    return TelegramDesk(channel.json()["id"], operator["id"], operator["token"])


async def push(
    simulator: Simulator, stack: Stack, desk: TelegramDesk, update: Any, secret: str | None = SECRET
) -> tuple[int, Any]:
    """The simulator posts the update to the channel's webhook path with the secret header, as Telegram does."""
    body: dict[str, Any] = {"ingress_url": stack.url("ingress"), "channel_id": desk.channel_id, "update": update}
    body |= {"secret_token": secret} if secret is not None else {"omit_secret": True}
    async with simulator.client() as sim:
        answer = await sim.post("/_sim/telegram/push", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["status"], answer.json()["body"]


async def routed(db: Database, provider_message_id: str) -> Document:
    return await eventually(lambda: db.messages.find_one({"provider_message_id": provider_message_id, "routed": True}))


async def settled(settings: Settings) -> None:
    """The router has taken everything ingress queued."""
    async with OperatorInbox(settings.amqp_url) as inbox:

        async def empty() -> bool:
            return await inbox.router_input_length(settings) == 0

        await eventually(empty)


async def reply(stack: Stack, desk: TelegramDesk, db: Database, chat_id: str, text: str) -> Document:
    async with stack.client("router", desk.operator_token) as client:
        assert (await client.post(f"/api/chats/{chat_id}/accept")).status_code == 200
        answer = await client.post(f"/api/chats/{chat_id}/messages", json={"text": text})
    assert answer.status_code == 202, answer.text

    async def final() -> Document | None:
        doc = await db.messages.find_one({"_id": answer.json()["id"]})
        return doc if doc and doc["status"] in ("sent", "failed") else None

    return await eventually(final, timeout=30)


async def bot_requests(simulator: Simulator, method: str) -> list[dict[str, Any]]:
    return await simulator.requests(f"/telegram/bot{TOKEN}/{method}")


async def test_text_and_captioned_photo_are_stored_and_the_reply_goes_out_as_send_message(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await stack.start("ingress", "router", "dispatcher", "profiles", "attachments")
    desk = await telegram_desk(stack)
    async with simulator.client() as sim:
        stored = await sim.put(
            "/_sim/telegram/files/photo-large",
            content=PHOTO,
            params={"file_path": "photos/file_7.jpg"},
            headers={"Content-Type": "image/jpeg"},
        )
        assert stored.status_code == 201
        assert (await sim.put("/_sim/telegram/profiles/1111", json={"photos": ["profile-1"]})).status_code == 200

    assert (await push(simulator, stack, desk, message_update(5001, 101, text="Hello, I need help")))[0] == 200
    assert (await push(simulator, stack, desk, message_update(5002, 102, **photo_content("My receipt"))))[0] == 200

    text = await routed(db, "1111:101")
    assert (text["type"], text["text"], text["sender"]) == ("text", "Hello, I need help", "1111")

    photo = await routed(db, "1111:102")
    assert (photo["type"], photo["text"], photo["chat_id"]) == ("image", "My receipt", text["chat_id"])
    # The message is stored at once; its file follows into GridFS, fetched through getFile.
    bucket = AsyncGridFSBucket(db)

    async def in_gridfs() -> list[Any]:
        return [f async for f in bucket.find({"metadata.message_id": photo["_id"], "metadata.index": 0})]

    [grid_file] = await eventually(in_gridfs)
    assert grid_file.metadata["content_type"] == "image/jpeg"
    assert await (await bucket.open_download_stream(grid_file._id)).read() == PHOTO

    async def photo_stored() -> Document | None:
        doc = await db.messages.find_one({"_id": photo["_id"]})
        return doc if doc and doc["attachments"][0]["status"] == "stored" else None

    [attachment] = (await eventually(photo_stored))["attachments"]
    assert (attachment["file_id"], attachment["size"]) == (str(grid_file._id), len(PHOTO))
    [get_file] = await bot_requests(simulator, "getFile")
    assert get_file["body"] == {"file_id": "photo-large"}  # the largest size, resolved through getFile

    contact = await eventually(lambda: db.contacts.find_one({"external_id": "1111", "profile_status": "resolved"}))
    assert contact["name"] == "Ann Customer"  # from the webhook's from.first_name / last_name
    assert contact["photo_url"] == "telegram-file:profile-1"  # a reference: the download URL holds the bot token

    sent = await reply(stack, desk, db, text["chat_id"], "Hi Ann, let me check")
    assert sent["status"] == "sent"
    [request] = [r for r in await bot_requests(simulator, "sendMessage") if r["status"] == 200]
    assert request["body"] == {"chat_id": 1111, "text": "Hi Ann, let me check"}
    assert request["headers"]["content-type"] == "application/json"
    assert sent["provider_message_id"] == f"1111:{request['answer_message_id']}"
    for collection in ("messages", "contacts", "chats"):
        async for doc in db[collection].find({}):
            assert TOKEN not in json.dumps(doc, default=str)


async def test_secret_token_header_is_required_and_must_match(stack: Stack, db: Database, settings: Settings) -> None:
    await stack.start("ingress", "router")
    desk = await telegram_desk(stack)
    raw = json.dumps(message_update(7001, 301, text="is this thing on?")).encode()
    path = f"/webhooks/telegram/{desk.channel_id}"
    json_type = {"Content-Type": "application/json"}
    async with stack.client("ingress") as ingress:
        wrong = await ingress.post(path, content=raw, headers={**json_type, "X-Telegram-Bot-Api-Secret-Token": "nope"})
        assert (wrong.status_code, wrong.json()["error"]) == (401, "bad_signature")
        assert SECRET not in wrong.text
        missing = await ingress.post(path, content=raw, headers=json_type)
        assert missing.status_code == 401
        near = await ingress.post(
            path, content=raw, headers={**json_type, "X-Telegram-Bot-Api-Secret-Token": SECRET[:-1]}
        )
        assert near.status_code == 401
        elsewhere = await ingress.post(
            "/webhooks/telegram/no-such-channel",
            content=raw,
            headers={**json_type, "X-Telegram-Bot-Api-Secret-Token": SECRET},
        )
        assert (elsewhere.status_code, elsewhere.json()["error"]) == (404, "unknown_channel")
        # The header Telegram sends is the secret given to setWebhook, verbatim: written out here, not computed by us.
        right = await ingress.post(
            path, content=raw, headers={**json_type, "x-telegram-bot-api-secret-token": "e2e-Secret_token-42"}
        )
        assert right.status_code == 200 and right.json()["messages"] == 1
    await routed(db, "1111:301")
    await settled(settings)
    assert await db.messages.count_documents({}) == 1


async def test_a_redelivered_update_is_stored_once(
    stack: Stack, db: Database, simulator: Simulator, settings: Settings
) -> None:
    await stack.start("ingress", "router")
    desk = await telegram_desk(stack)
    update = message_update(8001, 401, text="only once please")
    assert (await push(simulator, stack, desk, update))[0] == 200
    await routed(db, "1111:401")
    # Telegram retries an update whose answer it did not get; the same message may also come back under a new
    # update_id (after a webhook reset): neither is a second message.
    assert (await push(simulator, stack, desk, update))[0] == 200
    assert (await push(simulator, stack, desk, {**update, "update_id": 9001}))[0] == 200
    await settled(settings)
    assert await db.messages.count_documents({}) == 1


async def test_malformed_and_unhandled_updates(
    stack: Stack, db: Database, simulator: Simulator, settings: Settings
) -> None:
    await stack.start("ingress")
    await stack.start("router")
    desk = await telegram_desk(stack)
    await stack.stop("router")  # anything wrongly queued stays visible in the router's inbox
    async with simulator.client() as sim:
        base = {"ingress_url": stack.url("ingress"), "channel_id": desk.channel_id, "secret_token": SECRET}
        for raw, error in (
            ("{not json", "malformed_json"),
            ('{"update_id": "one", "message": {}}', "invalid_update"),
            ('{"update_id": 1, "message": {"message_id": 1, "date": 1, "text": "no chat"}}', "invalid_update"),
            ("[1, 2]", "invalid_update"),
        ):
            answer = (await sim.post("/_sim/telegram/push", json={**base, "raw": raw})).json()
            assert (answer["status"], answer["body"]["error"]) == (400, error), raw
        edited = {"update_id": 11, "edited_message": message_update(None, 5, text="edited")["message"]}
        callback = {"update_id": 12, "callback_query": {"id": "4382", "from": ANN, "data": "yes", "chat_instance": "1"}}
        poll = message_update(13, 6, poll={"id": "1", "question": "?", "options": []})
        for update in (edited, callback, poll):
            answer = (await sim.post("/_sim/telegram/push", json={**base, "update": update})).json()
            assert answer["status"] == 200 and answer["body"]["messages"] == 0
    async with OperatorInbox(settings.amqp_url) as inbox:
        assert await inbox.router_input_length(settings) == 0


async def test_register_sets_the_webhook_with_a_generated_secret_that_then_authenticates(
    stack: Stack, db: Database, simulator: Simulator, settings: Settings
) -> None:
    await stack.start("ingress", "router")
    desk = await telegram_desk(stack, secret=None)
    async with stack.admin() as admin:
        answer = await admin.post(f"/api/admin/channels/{desk.channel_id}/register")
    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["registration"]["ok"] is True, view
    assert "secret_token" in view["secrets_set"] and "secret_token" not in view["settings"]

    [call] = await bot_requests(simulator, "setWebhook")
    webhook_url = f"{settings.public_base_url}/webhooks/telegram/{desk.channel_id}"
    assert call["body"]["url"] == webhook_url
    secret = call["body"]["secret_token"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret)
    assert secret not in answer.text and TOKEN not in answer.text
    channel = await db.channels.find_one({"_id": desk.channel_id})
    assert channel is not None and channel["settings"]["secret_token"] == secret

    async with simulator.client() as sim:
        # With `token`, the simulator posts to the URL and with the secret setWebhook registered, like Telegram.
        update = message_update(None, 501, text="found you through the webhook")
        delivered = (await sim.post("/_sim/telegram/push", json={"token": TOKEN, "update": update})).json()
        assert delivered["status"] == 200
        forged = {"token": TOKEN, "update": message_update(None, 502, text="x"), "secret_token": SECRET}
        assert (await sim.post("/_sim/telegram/push", json=forged)).json()["status"] == 401
    await routed(db, "1111:501")

    # Registering again keeps the secret: webhooks already on their way still authenticate.
    async with stack.admin() as admin:
        assert (await admin.post(f"/api/admin/channels/{desk.channel_id}/register")).json()["registration"]["ok"]
    assert (await bot_requests(simulator, "setWebhook"))[-1]["body"]["secret_token"] == secret


async def test_429_retry_after_is_honoured_and_the_reply_sent_once(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await stack.start("ingress", "router", "dispatcher")
    desk = await telegram_desk(stack)
    assert (await push(simulator, stack, desk, message_update(6001, 601, text="hi")))[0] == 200
    incoming = await routed(db, "1111:601")
    # Telegram's flood answer: {"ok": false, "error_code": 429, "parameters": {"retry_after": ...}}, no header.
    await simulator.fault(path_prefix=f"/telegram/bot{TOKEN}/sendMessage", status=429, count=1, retry_after=0.5)
    sent = await reply(stack, desk, db, incoming["chat_id"], "after the flood wait")
    assert sent["status"] == "sent"
    calls = await bot_requests(simulator, "sendMessage")
    assert [c["status"] for c in calls] == [429, 200]
    assert all(c["body"] == {"chat_id": 1111, "text": "after the flood wait"} for c in calls)
    waited = datetime.fromisoformat(calls[1]["received_at"]) - datetime.fromisoformat(calls[0]["received_at"])
    assert waited.total_seconds() >= 0.5


async def test_files_over_the_bot_download_limit_fail_with_the_reason_and_the_message_stays(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await stack.start("ingress", "router", "attachments")
    desk = await telegram_desk(stack)
    async with simulator.client() as sim:
        big = {"file_path": "documents/big.zip", "file_size": str(21 * MB)}
        assert (await sim.put("/_sim/telegram/files/big-doc", content=b"zip", params=big)).status_code == 201
    announced = {"file_id": "big-doc", "file_unique_id": "b1", "file_name": "big.zip", "file_size": 21 * MB}
    unannounced = {"file_id": "big-doc", "file_unique_id": "b1", "file_name": "again.zip"}
    await push(simulator, stack, desk, message_update(6101, 701, document=announced, caption="logs"))
    await push(simulator, stack, desk, message_update(6102, 702, document=unannounced))

    async def failed(provider_message_id: str) -> Document:
        async def check() -> Document | None:
            doc = await db.messages.find_one({"provider_message_id": provider_message_id})
            return doc if doc and doc["attachments"][0]["status"] == "failed" else None

        return await eventually(check)

    for provider_message_id in ("1111:701", "1111:702"):
        doc = await failed(provider_message_id)
        reason = doc["attachments"][0]["failure_reason"]
        assert "at most 20 MB" in reason and TOKEN not in reason, reason
        assert doc["type"] == "file"
    # The announced size was refused without asking; the other one by getFile's own "file is too big".
    assert [c["body"]["file_id"] for c in await bot_requests(simulator, "getFile")] == ["big-doc"]
    assert await simulator.requests("/telegram/file/") == []


# Long polling


async def enqueue(simulator: Simulator, *updates: dict[str, Any]) -> list[int]:
    async with simulator.client() as sim:
        answer = await sim.post("/_sim/telegram/updates", json={"token": TOKEN, "updates": list(updates)})
    assert answer.status_code == 201, answer.text
    ids: list[int] = answer.json()["update_ids"]
    return ids


async def bot_queue(simulator: Simulator) -> dict[str, Any]:
    async with simulator.client() as sim:
        state: dict[str, Any] = (await sim.get("/_sim/telegram/updates", params={"token": TOKEN})).json()
    return state


async def stored_ids(db: Database) -> list[str]:
    return [doc["provider_message_id"] async for doc in db.messages.find({"direction": "incoming"})]


async def test_polling_across_an_ingress_restart_loses_and_repeats_nothing(
    stack: Stack, db: Database, simulator: Simulator, settings: Settings
) -> None:
    await stack.start("ingress", "router")
    desk = await telegram_desk(stack, mode="polling")
    await enqueue(simulator, *(message_update(None, 800 + n, text=f"before {n}") for n in range(3)))

    async def stored(count: int) -> list[str] | None:
        ids = await stored_ids(db)
        return ids if len(ids) >= count else None

    await eventually(lambda: stored(3))
    await eventually(lambda: db.telegram_offsets.find_one({"_id": desk.channel_id, "offset": 4}))

    await stack.stop("ingress")
    await enqueue(simulator, *(message_update(None, 900 + n, text=f"while down {n}") for n in range(3)))
    assert (await bot_queue(simulator))["pending"] == [4, 5, 6]
    await stack.start("ingress")

    await eventually(lambda: stored(6))

    async def confirmed() -> bool:
        return bool((await bot_queue(simulator))["confirmed_offset"] == 7)

    await eventually(confirmed)  # the poller's next getUpdates confirmed the last update to Telegram
    await settled(settings)
    ids = await stored_ids(db)
    assert sorted(ids) == sorted([f"1111:{800 + n}" for n in range(3)] + [f"1111:{900 + n}" for n in range(3)])
    offset_doc = await db.telegram_offsets.find_one({"_id": desk.channel_id})
    assert offset_doc is not None and offset_doc["offset"] == 7
    # The restarted poller asked from its stored offset: no update was fetched twice.
    asked = [c["body"]["offset"] for c in await bot_requests(simulator, "getUpdates")]
    assert asked.count(0) == 1 and set(asked) <= {0, 4, 7}, asked
    assert all(
        c["body"]["timeout"] == 1 and c["body"]["limit"] == 100 for c in await bot_requests(simulator, "getUpdates")
    )


async def test_polling_keeps_the_offset_until_the_broker_confirms(
    stack: Stack, db: Database, simulator: Simulator, settings: Settings, infra: Infra, vhost: str
) -> None:
    proxy = TcpProxy(infra.amqp_host, infra.amqp_port)
    await proxy.start()
    try:
        await stack.start("router")
        desk = await telegram_desk(stack, mode="polling")
        stack.settings = settings.model_copy(update={"amqp_url": f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost}"})
        await stack.start("ingress")  # its broker link runs through the proxy
        stack.settings = settings
        await enqueue(simulator, message_update(None, 1201, text="first"))
        await routed(db, "1111:1201")
        await eventually(lambda: db.telegram_offsets.find_one({"_id": desk.channel_id, "offset": 2}))

        proxy.cut()
        await enqueue(simulator, message_update(None, 1202, text="while the broker is away"))
        await asyncio.sleep(3)  # fetched at once; its publish cannot be confirmed (2 s publish timeout)
        offset_doc = await db.telegram_offsets.find_one({"_id": desk.channel_id})
        assert offset_doc is not None and offset_doc["offset"] == 2
        assert (await bot_queue(simulator))["pending"] == [2]  # not confirmed to Telegram either

        proxy.restore()
        await eventually(lambda: db.telegram_offsets.find_one({"_id": desk.channel_id, "offset": 3}), timeout=20)
        await routed(db, "1111:1202")
        await settled(settings)
        assert sorted(await stored_ids(db)) == ["1111:1201", "1111:1202"]
    finally:
        await stack.close()
        await proxy.close()


async def test_polling_while_a_webhook_is_set_is_a_channel_error_until_register_deletes_it(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    async with simulator.client() as sim:
        hook = {"token": TOKEN, "url": "https://old.example/hook"}
        assert (await sim.put("/_sim/telegram/webhook", json=hook)).status_code == 200
    await enqueue(simulator, message_update(None, 1001, text="waiting behind a webhook"))
    await stack.start("ingress", "router")
    desk = await telegram_desk(stack, mode="polling")

    async def polling_error() -> str | None:
        channel = await db.channels.find_one({"_id": desk.channel_id})
        error: dict[str, str] = (channel or {}).get("polling_error") or {}
        return error.get("detail")

    detail = await eventually(polling_error)
    assert "webhook is active" in detail and "register" in detail and TOKEN not in detail
    assert await db.messages.count_documents({}) == 0

    async with stack.admin() as admin:
        registered = (await admin.post(f"/api/admin/channels/{desk.channel_id}/register")).json()
    assert registered["registration"]["ok"] is True and "polling" in registered["registration"]["detail"]
    assert len(await bot_requests(simulator, "deleteWebhook")) == 1
    assert await bot_requests(simulator, "setWebhook") == []
    await routed(db, "1111:1001")

    async def cleared() -> bool:
        channel = await db.channels.find_one({"_id": desk.channel_id})
        return channel is not None and "polling_error" not in channel

    await eventually(cleared)


async def test_polling_backs_off_exponentially_on_network_errors(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await simulator.fault(path_prefix=f"/telegram/bot{TOKEN}/getUpdates", status=502, count=2)
    await enqueue(simulator, message_update(None, 1101, text="through the outage"))
    await stack.start("ingress", "router")
    await telegram_desk(stack, mode="polling")
    await routed(db, "1111:1101")
    calls = await bot_requests(simulator, "getUpdates")
    assert [c["status"] for c in calls[:3]] == [502, 502, 200]
    times = [datetime.fromisoformat(c["received_at"]) for c in calls[:3]]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    assert 0.9 <= gaps[0] < 1.9 and 1.9 <= gaps[1] < 3.5, gaps
