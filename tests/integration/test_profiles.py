"""Profiles: each new sender's contact is named from the webhook, the messenger's profile, or the reference's fallback."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_contracts import ProfileRequested, ProfileResolved
from omni_profiles.app import create_app as profiles_app
from omni_profiles.profiles import fallback_contact_name
from omni_providers import Channel, ProviderRegistry
from omni_providers.thirdparty import ThirdPartyProvider
from omni_router.store import fallback_contact_name as router_fallback_name
from omni_runtime.database import Database, Document
from omni_runtime.settings import Settings
from omni_runtime.topology import EVENTS_EXCHANGE
from omni_runtime.web import HttpServer
from tests.support.infra import free_port
from tests.support.seed import Desk, customer_message, seed_desk
from tests.support.stack import OperatorInbox, Stack, eventually, signed

pytestmark = pytest.mark.integration


class Resolutions:
    """What the profiles service tells the router: every `profile.resolved` event, on a queue of the test's own."""

    def __init__(self, amqp_url: str) -> None:
        self._url = amqp_url
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def __aenter__(self) -> "Resolutions":
        self._connection = await aio_pika.connect(self._url)
        channel = await self._connection.channel()
        self._exchange = await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        self._queue = await channel.declare_queue(exclusive=True)
        await self._queue.bind(self._exchange, "profile.resolved")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def next(self) -> ProfileResolved:
        assert self._queue is not None
        queue = self._queue
        message = await eventually(lambda: queue.get(no_ack=True, fail=False))
        return ProfileResolved.model_validate_json(message.body)

    async def pending(self) -> int:
        assert self._queue is not None
        declared = await self._queue.channel.declare_queue(self._queue.name, passive=True)
        return int(declared.declaration_result.message_count or 0)

    async def request(self, event: ProfileRequested) -> None:
        assert self._exchange is not None
        await self._exchange.publish(aio_pika.Message(event.model_dump_json().encode()), routing_key=event.kind)


@pytest.fixture
async def resolutions(settings: Settings) -> AsyncIterator[Resolutions]:
    async with Resolutions(settings.amqp_url) as running:
        yield running


async def send(stack: Stack, desk: Desk, body: dict[str, Any]) -> None:
    raw, headers = signed(body, desk.secret)
    async with stack.client("ingress") as ingress:
        answer = await ingress.post(f"/webhooks/{desk.provider}/receive", content=raw, headers=headers)
    assert answer.status_code == 200, answer.text


async def resolved_contact(db: Database, sender: str) -> Document:
    """The contact of `sender` once the router has applied its ProfileResolved."""
    return await eventually(lambda: db.contacts.find_one({"external_id": sender, "profile_status": "resolved"}))


async def test_the_sender_name_of_the_webhook_names_the_contact(
    stack: Stack, db: Database, resolutions: Resolutions
) -> None:
    await stack.start("ingress", "router", "profiles")
    desk = await seed_desk(stack, operators=1)
    await send(stack, desk, customer_message("m-1", sender="cust-1", sender_name="Ann Customer"))

    resolved = await resolutions.next()
    assert (resolved.name, resolved.photo_url) == ("Ann Customer", None)
    contact = await resolved_contact(db, "cust-1")
    assert resolved.contact_id == contact["_id"]
    assert contact["name"] == "Ann Customer"
    chat = await db.chats.find_one({"contact_id": contact["_id"]})
    assert chat is not None and chat["contact_name"] == "Ann Customer"


async def test_without_a_sender_name_the_contact_gets_the_fallback_name(
    stack: Stack, db: Database, resolutions: Resolutions
) -> None:
    await stack.start("ingress", "router", "profiles")
    desk = await seed_desk(stack, operators=1)
    await send(stack, desk, customer_message("m-1", sender="cust-7", sender_name=None))

    resolved = await resolutions.next()
    assert resolved.name == "New contact Acme chat-cust-7"
    contact = await resolved_contact(db, "cust-7")
    assert contact["name"] == "New contact Acme chat-cust-7"


def test_the_fallback_name_is_the_routers() -> None:
    channel = Channel(id="c", name="Acme chat", provider="acme", source="bot-1", queue_id="q", settings={})
    assert fallback_contact_name(channel, "cust-7") == router_fallback_name(channel, "cust-7")


async def test_a_request_for_an_unknown_channel_is_parked(
    stack: Stack, settings: Settings, resolutions: Resolutions
) -> None:
    await stack.start("profiles")
    request = ProfileRequested(contact_id="k-1", channel_id="no-such-channel", provider="acme", external_id="cust-1")
    await resolutions.request(request)

    async with OperatorInbox(settings.amqp_url) as inbox:

        async def parked() -> int:
            return await inbox.queue_length("profiles.requested.parked")

        assert await eventually(parked) == 1
    assert await resolutions.pending() == 0


@dataclass(frozen=True)
class DirectoryProfile:
    name: str | None
    photo_url: str | None


class DirectoryProvider(ThirdPartyProvider):
    """A provider adapter with the profile hook: it looks senders up in its messenger's directory."""

    async def fetch_profile(self, http: httpx.AsyncClient, channel: Channel, external_id: str) -> DirectoryProfile:
        answer = await http.get(f"{channel.settings['directory_url']}/users/{external_id}")
        answer.raise_for_status()
        return DirectoryProfile(answer.json()["name"], answer.json()["photo"])


def directory() -> Starlette:
    async def user(request: Request) -> Response:
        sender = request.path_params["sender"]
        return JSONResponse({"name": f"Directory name of {sender}", "photo": f"https://example.org/{sender}.jpg"})

    return Starlette(routes=[Route("/users/{sender}", user)])


async def test_a_provider_adapter_can_look_the_sender_up(stack: Stack, db: Database, resolutions: Resolutions) -> None:
    people = HttpServer(directory(), "127.0.0.1", free_port())
    await people.start()
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=1, provider="directory")
    async with stack.admin() as admin:
        patch = {"settings": {"directory_url": f"http://127.0.0.1:{people.port}"}}
        answer = await admin.patch(f"/api/admin/channels/{desk.channel_id}", json=patch)
        assert answer.status_code == 200, answer.text
    registry = ProviderRegistry(stack.settings, {"directory": DirectoryProvider})
    profiles = HttpServer(profiles_app(stack.settings, registry), "127.0.0.1", stack.settings.profiles_port)
    await profiles.start()
    try:
        await send(stack, desk, customer_message("m-1", sender="cust-3", sender_name="Webhook name"))
        resolved = await resolutions.next()
        contact = await resolved_contact(db, "cust-3")
    finally:
        await profiles.stop()
        await people.stop()
    assert (resolved.name, resolved.photo_url) == ("Directory name of cust-3", "https://example.org/cust-3.jpg")
    assert (contact["name"], contact["photo_url"]) == (resolved.name, resolved.photo_url)
