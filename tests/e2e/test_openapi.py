"""The running ingress serves its OpenAPI 3 description, with the Cache-Control every API answer carries."""

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
