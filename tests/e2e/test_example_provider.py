"""The example package examples/test-provider: plugged in through its entry point, receiving, naming contacts."""

import importlib.metadata
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_example_test_provider import TestProvider
from omni_providers import ProfileSource, ProviderRegistry
from omni_providers.registry import ENTRY_POINT_GROUP
from omni_providers.thirdparty import ThirdPartyProvider
from omni_runtime.database import Database, Document
from omni_runtime.settings import Settings
from omni_runtime.web import HttpServer
from tests.support.seed import customer_message, seed_desk
from tests.support.stack import Stack, eventually, signed

pytestmark = pytest.mark.e2e

SECRET = "test-provider-secret"


class ProfileApi:
    """The Test messenger's profile API: `GET /profiles/{id}` -> `{"first_name", "last_name"}`."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.server = HttpServer(Starlette(routes=[Route("/profiles/{user_id}", self.profile)]), "127.0.0.1", 0)

    async def profile(self, request: Request) -> Response:
        user_id: str = request.path_params["user_id"]
        self.asked.append(user_id)
        return JSONResponse({"first_name": "Jane", "last_name": "Roe", "id": user_id})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/profiles"


@pytest.fixture
async def profile_api() -> AsyncIterator[ProfileApi]:
    api = ProfileApi()
    await api.server.start()
    yield api
    await api.server.stop()


def test_the_test_provider_is_loaded_through_its_entry_point() -> None:
    [entry] = [e for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if e.name == "test"]
    assert entry.value == "omni_example_test_provider:TestProvider"
    assert entry.dist is not None and entry.dist.name == "omni-example-test-provider"
    registry = ProviderRegistry.from_entry_points(Settings())
    provider = registry.get("test")
    assert type(provider) is TestProvider and provider.name == "test"
    assert isinstance(provider, ProfileSource)  # its optional role: profiles from its messenger
    assert not registry.is_builtin("test")
    # Without the entry point the same name is only the generic third-party format, with no profile role.
    bare = ProviderRegistry(Settings()).get("test")
    assert type(bare) is ThirdPartyProvider and not isinstance(bare, ProfileSource)


async def test_webhook_is_stored_and_the_contact_named_from_the_profile_api(
    stack: Stack, db: Database, profile_api: ProfileApi
) -> None:
    await stack.start("ingress", "router", "profiles")
    desk = await seed_desk(stack, operators=1)
    async with stack.admin() as admin:
        created = await admin.post(
            "/api/admin/channels",
            json={
                "name": "Test messenger",
                "provider": "test",
                "source": "test-bot",
                "queue_id": desk.queue_id,
                "settings": {
                    "secret": SECRET,
                    "outgoing_url": "http://127.0.0.1:9/unused",
                    "profile_api_url": profile_api.url,
                },
            },
        )
    assert created.status_code == 201, created.text
    body = customer_message("test-1", "hello from Test", sender="user-42", recipient="test-bot")
    del body["sender_name"]  # the name must come from the profile API, not the webhook
    raw, headers = signed(body, SECRET)
    async with stack.client("ingress") as ingress:
        answer = await ingress.post("/webhooks/test/receive", content=raw, headers=headers)
        assert answer.status_code == 200, answer.text
        unsigned = await ingress.post(
            "/webhooks/test/receive", content=raw, headers={"Content-Type": "application/json"}
        )
        assert unsigned.status_code == 401
    message = await eventually(lambda: db.messages.find_one({"provider_message_id": "test-1", "routed": True}))
    assert (message["text"], message["channel_id"]) == ("hello from Test", created.json()["id"])

    async def named() -> Document | None:
        return await db.contacts.find_one({"external_id": "user-42", "profile_status": "resolved"})

    contact = await eventually(named)
    assert contact["name"] == "Jane Roe"
    assert profile_api.asked == ["user-42"]
