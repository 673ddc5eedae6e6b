"""Attachments: the message is stored at once with its files pending; each file then reaches GridFS or fails with a reason."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import httpx
import pytest
from bson import ObjectId
from gridfs import AsyncGridFSBucket
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from omni_attachments.app import create_app as attachments_app
from omni_attachments.files import AttachmentFiles, FileKey
from omni_contracts import Attachment, AttachmentRequested, AttachmentStored
from omni_providers import Channel, ProviderRegistry
from omni_providers.thirdparty import ThirdPartyProvider
from omni_runtime.consumer import QuickRetries
from omni_runtime.database import Database, Document
from omni_runtime.settings import Settings
from omni_runtime.topology import EVENTS_EXCHANGE
from omni_runtime.web import HttpServer
from tests.support.infra import Infra, free_port
from tests.support.seed import Desk, customer_message, seed_desk
from tests.support.stack import OperatorInbox, Stack, eventually, signed

pytestmark = pytest.mark.integration

PHOTO = bytes(range(256)) * 1200  # 300 KiB: more than one GridFS chunk
FILES = {"photo.png": (PHOTO, "image/png"), "big.bin": (b"x" * 5000, "application/octet-stream")}
MEDIA_TOKEN = "media-token"


class FileServer:
    """A file host on loopback that counts requests by path; `/gated/...` answers only once `gate` is set."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.gate = asyncio.Event()
        self.server = HttpServer(self._app(), "127.0.0.1", free_port())

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"

    def _app(self) -> Starlette:
        async def serve(request: Request) -> Response:
            body, content_type = FILES[request.path_params["name"]]
            return Response(body, media_type=content_type)

        async def gated(request: Request) -> Response:
            await self.gate.wait()
            return await serve(request)

        async def flaky(request: Request) -> Response:
            if self.hits[request.url.path] <= 2:
                return Response("busy", status_code=500)
            return Response(PHOTO, media_type="image/png")

        async def missing(request: Request) -> Response:
            return Response("Not Found", status_code=404)

        async def endless(request: Request) -> Response:
            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(5):
                    yield b"y" * 1000

            # No Content-Length: only counting while streaming can catch this one.
            return StreamingResponse(chunks(), media_type="application/octet-stream")

        async def redirect(request: Request) -> Response:
            return RedirectResponse("/files/photo.png", status_code=302)

        async def protected(request: Request) -> Response:
            if request.headers.get("Authorization") != f"Bearer {MEDIA_TOKEN}":
                return Response("who are you", status_code=401)
            return await serve(request)

        def counted(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
            async def route(request: Request) -> Response:
                self.hits[request.url.path] += 1
                return await endpoint(request)

            return route

        routes = {
            "/files/{name}": serve,
            "/gated/{name}": gated,
            "/flaky": flaky,
            "/missing": missing,
            "/endless": endless,
            "/redirect": redirect,
            "/protected/{name}": protected,
        }
        return Starlette(routes=[Route(path, counted(endpoint)) for path, endpoint in routes.items()])


@pytest.fixture
async def files() -> AsyncIterator[FileServer]:
    server = FileServer()
    await server.server.start()
    yield server
    server.gate.set()
    await server.server.stop()


async def send_with_attachments(stack: Stack, desk: Desk, message_id: str, *urls: str) -> None:
    attachments = [
        {"url": url, "content_type": "image/png", "file_name": f"file-{n}.png"} for n, url in enumerate(urls)
    ]
    body = customer_message(message_id, text="see attached", type="image", attachments=attachments)
    raw, headers = signed(body, desk.secret)
    async with stack.client("ingress") as ingress:
        answer = await ingress.post(f"/webhooks/{desk.provider}/receive", content=raw, headers=headers)
    assert answer.status_code == 200, answer.text


async def routed(db: Database, message_id: str) -> Document:
    return await eventually(lambda: db.messages.find_one({"provider_message_id": message_id, "routed": True}))


async def settled(db: Database, message_id: str) -> Document:
    """The message once none of its attachments is pending any more."""

    async def check() -> Document | None:
        doc = await db.messages.find_one({"provider_message_id": message_id})
        if doc and doc["attachments"] and all(a["status"] != "pending" for a in doc["attachments"]):
            return doc
        return None

    return await eventually(check)


async def read_file(db: Database, file_id: str) -> tuple[bytes, dict[str, Any]]:
    stream = await AsyncGridFSBucket(db).open_download_stream(ObjectId(file_id))
    return await stream.read(), dict(stream.metadata or {})


async def all_files(db: Database) -> list[Any]:
    return [grid_out async for grid_out in AsyncGridFSBucket(db).find({})]


class Reports:
    """What the attachments service tells the router: every `attachment.stored` event, on a queue of the test's own."""

    def __init__(self, amqp_url: str) -> None:
        self._url = amqp_url
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._seen: list[AttachmentStored] = []

    async def __aenter__(self) -> "Reports":
        self._connection = await aio_pika.connect(self._url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        self._queue = await channel.declare_queue(exclusive=True)
        await self._queue.bind(exchange, "attachment.stored")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def take(self, count: int) -> list[AttachmentStored]:
        """The next `count` reports, by attachment index."""

        async def enough() -> list[AttachmentStored] | None:
            assert self._queue is not None
            message = await self._queue.get(no_ack=True, fail=False)
            if message is not None:
                self._seen.append(AttachmentStored.model_validate_json(message.body))
            return self._seen[:count] if len(self._seen) >= count else None

        taken = await eventually(enough)
        del self._seen[:count]
        return sorted(taken, key=lambda report: report.index)


@pytest.fixture
async def reports(settings: Settings) -> AsyncIterator[Reports]:
    async with Reports(settings.amqp_url) as running:
        yield running


def assert_applied(attachment: Document, report: AttachmentStored) -> None:
    """The router wrote the report into the message, where operators read it."""
    fields = ("status", "file_id", "size", "content_type", "failure_reason")
    assert {f: attachment.get(f) for f in fields} == {f: getattr(report, f) for f in fields}


async def publish(amqp_url: str, event: AttachmentRequested) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EVENTS_EXCHANGE)
        await exchange.publish(aio_pika.Message(event.model_dump_json().encode()), routing_key=event.kind)
    finally:
        await connection.close()


async def test_message_is_stored_at_once_and_its_file_follows(
    stack: Stack, db: Database, files: FileServer, reports: Reports
) -> None:
    await stack.start("ingress", "router", "attachments")
    desk = await seed_desk(stack, operators=1)
    await send_with_attachments(stack, desk, "m-1", files.url("/gated/photo.png"))

    message = await routed(db, "m-1")
    assert message["text"] == "see attached"
    assert message["attachments"][0]["status"] == "pending"

    # The download is under way and held by the file host, and the message is there all the same.
    async def downloading() -> int:
        return files.hits["/gated/photo.png"]

    await eventually(downloading)
    still = await db.messages.find_one({"_id": message["_id"]})
    assert still is not None and still["attachments"][0]["status"] == "pending"

    files.gate.set()
    [report] = await reports.take(1)
    assert (report.message_id, report.chat_id, report.index) == (message["_id"], message["chat_id"], 0)
    assert (report.status, report.size, report.content_type) == ("stored", len(PHOTO), "image/png")
    assert report.file_id is not None and report.failure_reason is None
    content, metadata = await read_file(db, report.file_id)
    assert content == PHOTO
    assert metadata == {
        "message_id": message["_id"],
        "chat_id": message["chat_id"],
        "index": 0,
        "content_type": "image/png",
    }
    assert_applied((await settled(db, "m-1"))["attachments"][0], report)
    token = next(iter(desk.operators.values()))
    async with stack.client("router", token) as client:
        conversation = (await client.get(f"/api/chats/{message['chat_id']}/messages")).json()["items"]
    assert conversation[0]["attachments"][0]["status"] == "stored"
    assert conversation[0]["attachments"][0]["file_id"] == report.file_id


async def test_files_above_the_limit_fail_and_the_message_stays(
    stack: Stack, db: Database, files: FileServer, reports: Reports
) -> None:
    stack.settings = stack.settings.model_copy(update={"attachment_max_bytes": 1000})
    await stack.start("ingress", "router", "attachments")
    desk = await seed_desk(stack, operators=1)
    await send_with_attachments(stack, desk, "m-big", files.url("/files/big.bin"), files.url("/endless"))

    announced, streamed = await reports.take(2)
    assert (announced.status, streamed.status) == ("failed", "failed")
    assert announced.failure_reason == "attachment is 5000 bytes, above the limit of 1000 bytes"
    assert streamed.failure_reason == "attachment is larger than the limit of 1000 bytes"
    assert announced.file_id is None and streamed.file_id is None
    assert await all_files(db) == []  # the part streamed before the limit was hit is gone too
    message = await routed(db, "m-big")
    assert message["text"] == "see attached"
    stored = (await settled(db, "m-big"))["attachments"]
    assert_applied(stored[0], announced)
    assert_applied(stored[1], streamed)


async def test_a_file_that_stays_missing_fails_after_the_retries(
    stack: Stack, db: Database, files: FileServer, reports: Reports
) -> None:
    await stack.start("ingress", "router", "attachments")
    desk = await seed_desk(stack, operators=1)
    await send_with_attachments(stack, desk, "m-404", files.url("/missing"))

    [report] = await reports.take(1)
    attempts = stack.settings.max_attempts
    assert report.status == "failed" and report.failure_reason is not None
    assert report.failure_reason.startswith(f"gave up after {attempts} attempts: ")
    assert "answered 404" in report.failure_reason
    assert files.hits["/missing"] == attempts * QuickRetries().attempts  # each attempt: three quick tries, then a wait
    async with OperatorInbox(stack.settings.amqp_url) as inbox:

        async def parked() -> int:
            return await inbox.queue_length("attachments.requested.parked")

        assert await eventually(parked) == 1
    assert_applied((await settled(db, "m-404"))["attachments"][0], report)


async def test_private_addresses_and_other_schemes_are_refused(
    stack: Stack, db: Database, files: FileServer, reports: Reports
) -> None:
    stack.settings = stack.settings.model_copy(update={"allow_private_fetch": False})
    await stack.start("ingress", "router", "attachments")
    desk = await seed_desk(stack, operators=1)
    loopback = f"http://localhost:{files.server.port}/files/photo.png"
    await send_with_attachments(stack, desk, "m-ssrf", loopback, "http://10.1.2.3/x.png", "file:///etc/passwd")

    by_name, private_net, scheme = await reports.take(3)
    assert [r.status for r in (by_name, private_net, scheme)] == ["failed"] * 3
    assert by_name.failure_reason is not None and private_net.failure_reason is not None
    assert by_name.failure_reason.startswith("refused to fetch from localhost: ")
    assert "is a loopback address, and private addresses are refused" in by_name.failure_reason
    assert private_net.failure_reason.startswith("refused to fetch from 10.1.2.3: 10.1.2.3 is a private address")
    assert scheme.failure_reason == "refused to fetch a file URL: only http and https are allowed"
    assert files.hits == Counter()
    async with OperatorInbox(stack.settings.amqp_url) as inbox:
        assert await inbox.queue_length("attachments.requested.parked") == 0  # refusals are final, not retried
    stored = (await settled(db, "m-ssrf"))["attachments"]
    for attachment, report in zip(stored, (by_name, private_net, scheme), strict=True):
        assert_applied(attachment, report)


async def test_a_file_that_fails_twice_is_stored_once_and_a_repeat_does_not_fetch_again(
    stack: Stack, db: Database, files: FileServer, reports: Reports
) -> None:
    await stack.start("ingress", "router", "attachments")
    desk = await seed_desk(stack, operators=1)
    await send_with_attachments(stack, desk, "m-flaky", files.url("/flaky"))

    [report] = await reports.take(1)
    assert report.status == "stored" and report.file_id is not None
    assert files.hits["/flaky"] == 3
    assert [str(f._id) for f in await all_files(db)] == [report.file_id]
    assert (await read_file(db, report.file_id))[0] == PHOTO

    message = await routed(db, "m-flaky")
    repeat = AttachmentRequested(
        message_id=message["_id"],
        chat_id=message["chat_id"],
        channel_id=desk.channel_id,
        provider=desk.provider,
        index=0,
        attachment=Attachment(url=files.url("/flaky"), content_type="image/png"),
    )
    await publish(stack.settings.amqp_url, repeat)
    [again] = await reports.take(1)
    assert (again.status, again.file_id, again.size) == ("stored", report.file_id, len(PHOTO))
    assert files.hits["/flaky"] == 3
    assert len(await all_files(db)) == 1
    assert_applied((await settled(db, "m-flaky"))["attachments"][0], report)


async def test_redirects_are_followed(stack: Stack, db: Database, files: FileServer, reports: Reports) -> None:
    await stack.start("ingress", "router", "attachments")
    desk = await seed_desk(stack, operators=1)
    await send_with_attachments(stack, desk, "m-moved", files.url("/redirect"))

    [report] = await reports.take(1)
    assert report.status == "stored" and report.file_id is not None, report
    assert (await read_file(db, report.file_id))[0] == PHOTO
    assert files.hits["/redirect"] == 1 and files.hits["/files/photo.png"] == 1


class MediaProvider(ThirdPartyProvider):
    """A provider adapter with the attachment hook: its media URLs need the channel's token."""

    async def locate_attachment(self, http: httpx.AsyncClient, channel: Channel, attachment: Attachment) -> Any:
        assert attachment.url is not None
        return _Located(attachment.url, {"Authorization": f"Bearer {channel.settings['media_token']}"})


class _Located:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers


async def test_a_provider_adapter_can_say_how_to_fetch_its_files(
    stack: Stack, db: Database, files: FileServer, reports: Reports
) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=1, provider="media")
    async with stack.admin() as admin:
        patch = {"settings": {"media_token": MEDIA_TOKEN}}
        answer = await admin.patch(f"/api/admin/channels/{desk.channel_id}", json=patch)
        assert answer.status_code == 200, answer.text
    registry = ProviderRegistry(stack.settings, {"media": MediaProvider})
    server = HttpServer(attachments_app(stack.settings, registry), "127.0.0.1", stack.settings.attachments_port)
    await server.start()
    try:
        await send_with_attachments(stack, desk, "m-media", files.url("/protected/photo.png"))
        [report] = await reports.take(1)
    finally:
        await server.stop()
    assert report.status == "stored" and report.file_id is not None, report
    assert (await read_file(db, report.file_id))[0] == PHOTO


async def test_one_file_per_attachment_key(db: Database, infra: Infra) -> None:
    attachment_files = AttachmentFiles(db)
    await attachment_files.ensure_index()

    def copy_of(content: bytes) -> Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[int]]:
        async def copy(write: Callable[[bytes], Awaitable[None]]) -> int:
            await write(content)
            return len(content)

        return copy

    key = FileKey("m-race", 0)
    first = await attachment_files.save(key, "chat", "a.txt", "text/plain", copy_of(b"first"))
    second = await attachment_files.save(key, "chat", "a.txt", "text/plain", copy_of(b"second"))
    if infra.kind == "containers":
        # MongoDB enforces the unique key: a racing second upload is dropped and the first one reported.
        assert second == first
        assert len(await all_files(db)) == 1
    else:
        # Difference: nx-27017 keeps GridFS in tables of its own and ignores indexes on them, so a true race
        # (two consumers downloading the same attachment at once) can leave two files there.
        assert second != first
    assert await attachment_files.find(key) is not None
