"""The running ingress and router serve their OpenAPI 3 descriptions, with the Cache-Control every API answer
carries."""

import pytest
from openapi_spec_validator import validate

from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


async def test_ingress_serves_a_valid_openapi_document(stack: Stack) -> None:
    await stack.start("ingress")
    async with stack.client("ingress") as ingress:
        answer = await ingress.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    document = answer.json()
    validate(document)
    assert "/webhooks/{provider}/{channel_id}" in document["paths"]
    assert "/readyz" in document["paths"]


async def test_router_serves_a_valid_openapi_document(stack: Stack) -> None:
    await stack.start("router")
    async with stack.client("router") as router:
        answer = await router.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    document = answer.json()
    validate(document)
    assert document["info"]["title"] == "omnichannel router"
    assert "post" in document["paths"]["/api/chats/{chat_id}/accept"]
    assert document["paths"]["/api/admin/{kind}/{item_id}"]["patch"]["security"] == [{"adminToken": []}]
