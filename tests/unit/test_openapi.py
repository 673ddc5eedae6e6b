"""`/openapi.json`: generated from the routes' docstrings, every route described, a valid OpenAPI 3 document."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omni_contracts import Attachment
from omni_ingress.app import create_app as ingress_app
from omni_router.bootstrap import create_app as router_app
from omni_router.domain.admin import ChannelSettings, OperatorSettings, QueueSettings
from omni_router.domain.canned import CannedResponse, PersonalResponse, SharedResponse
from omni_router.domain.integration import (
    DeliveryAttempt,
    Subscription,
    WebhookSettings,
    attempt_view,
    subscription_view,
)
from omni_router.domain.labels import Label, LabelSettings
from omni_router.domain.model import Channel, Chat, FileRef, Message, Operator, Queue
from omni_router.domain.notes import NoteBody
from omni_router.domain.search import SearchEntry
from omni_router.domain.tokens import ApiToken, AuditEntry, TokenSettings, audit_view, token_view
from omni_router.domain.views import (
    attachment_view,
    canned_view,
    channel_view,
    chat_view,
    label_view,
    message_view,
    note_view,
    operator_view,
    queue_view,
    search_hit_view,
)
from omni_router.entrypoints import admin_api, operator_api, workplace_api
from omni_runtime.openapi import openapi_route, openapi_schema, undocumented
from omni_runtime.parking import Parked
from omni_runtime.settings import Settings


async def _plain(request: Request) -> Response:
    """Says what it does, in prose only: no operation."""
    return Response()


async def _no_responses(request: Request) -> Response:
    """An operation without its answers.
    ---
    summary: something
    """
    return Response()


async def _per_method(request: Request) -> Response:
    """One handler, two methods, two paths.
    ---
    get:
      summary: read it
      responses: {"200": {description: ok}}
    post:
      summary: write it
      parameters:
        - {name: item, in: path, required: true, description: which item, schema: {type: string}}
        - {name: dry_run, in: query, schema: {type: boolean}}
      responses: {"204": {description: written}}
    """
    return Response()


async def _get(app: Starlette, path: str) -> httpx.Response:
    """Through the app itself, without a server; the lifespan (broker, database) never runs."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        return await client.get(path)


async def test_ingress_describes_every_route_in_a_valid_openapi_3_document() -> None:
    app = ingress_app(Settings())
    assert undocumented(app) == []
    answer = await _get(app, "/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    document: dict[str, Any] = answer.json()
    validate(document)  # raises on anything that is not OpenAPI 3
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "omnichannel ingress"
    operations = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    assert operations == {
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /openapi.json",
        "GET /media/{token}",
        "GET /webhooks/{provider}",
        "POST /webhooks/{provider}",
        "POST /webhooks/{provider}/{channel_id}",
    }
    post = document["paths"]["/webhooks/{provider}/{channel_id}"]["post"]
    assert {"200", "400", "401", "404", "413", "503"} <= set(post["responses"])
    assert "X-Telegram-Bot-Api-Secret-Token" in post["description"]


def test_undocumented_names_routes_without_an_operation_or_its_responses() -> None:
    routes = [
        Route("/plain", _plain),
        Route("/half", _no_responses, methods=["POST"]),
        Route("/both/{item}", _per_method, methods=["GET", "POST"]),
    ]
    assert undocumented(routes) == ["GET /plain", "POST /half"]


def test_one_handler_documents_each_method_and_gets_exactly_its_paths_parameters() -> None:
    routes = [
        Route("/items/{item}", _per_method, methods=["GET", "POST"]),
        Route("/items", _per_method, methods=["POST"]),
    ]
    paths = openapi_schema(routes, "t", "1")["paths"]
    assert paths["/items/{item}"]["get"]["summary"] == "read it"
    # Not described on GET: declared as a plain required string, so the document stays valid.
    assert paths["/items/{item}"]["get"]["parameters"] == [
        {"name": "item", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert [p["name"] for p in paths["/items/{item}"]["post"]["parameters"]] == ["item", "dry_run"]
    assert paths["/items/{item}"]["post"]["parameters"][0]["description"] == "which item"
    # The same docstring on a path without {item}: the path parameter is dropped, the query one kept.
    assert [p["name"] for p in paths["/items"]["post"]["parameters"]] == ["dry_run"]


async def test_openapi_route_serves_the_apps_own_routes() -> None:
    app = Starlette(routes=[Route("/both/{item}", _per_method, methods=["GET", "POST"]), openapi_route("x", "2")])
    document = (await _get(app, "/openapi.json")).json()
    validate(document)
    assert document["info"] == {"title": "x", "version": "2"}
    assert set(document["paths"]) == {"/both/{item}", "/openapi.json"}
    assert document["components"]["schemas"]["Error"]["required"] == ["error", "detail"]


@pytest.fixture(scope="module")
def router_document() -> dict[str, Any]:
    """The router's document as it serves it (through the app, without its lifespan)."""
    answer = asyncio.run(_get(router_app(Settings()), "/openapi.json"))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    document: dict[str, Any] = answer.json()
    return document


def _route_operations(app: Starlette) -> set[str]:
    """`METHOD /path` of every endpoint the app routes (convertors stripped; HEAD comes with GET)."""
    found = set()
    for route in app.routes:
        if isinstance(route, Route) and route.methods:
            path = route.path.replace(":str}", "}")
            found |= {f"{method} {path}" for method in route.methods if method != "HEAD"}
    return found


def test_router_describes_every_route_in_a_valid_openapi_3_document(router_document: dict[str, Any]) -> None:
    app = router_app(Settings())
    assert undocumented(app) == []
    validate(router_document)  # raises on anything that is not OpenAPI 3 (dangling $refs included)
    assert router_document["info"]["title"] == "omnichannel router"
    assert {"Error", "Chat", "Operator"} <= set(router_document["components"]["schemas"])
    paths = router_document["paths"]
    operations = {f"{method.upper()} {path}" for path, item in paths.items() for method in item}
    assert operations == _route_operations(app)
    assert {"GET /", "GET /openapi.json", "GET /readyz", "POST /api/chats/{chat_id}/messages"} <= operations
    # The console's static files are a mount of files, not endpoints: not described.
    assert not [path for path in paths if path.startswith("/console")]


def test_router_operations_name_their_credentials_and_its_refusals(router_document: dict[str, Any]) -> None:
    schemes = router_document["components"]["securitySchemes"]
    for bearer in ("operatorToken", "adminToken"):
        assert schemes[bearer]["type"] == "http" and schemes[bearer]["scheme"] == "bearer"
    assert (schemes["streamTicket"]["in"], schemes["streamTicket"]["name"]) == ("query", "ticket")
    for path, item in router_document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            security = operation.get("security", [])
            if not path.startswith("/api/"):
                assert security == [], where
                continue
            assert "401" in operation["responses"], where
            if path.startswith("/api/admin/"):
                assert security == [{"adminToken": []}], where
                assert "403" in operation["responses"], where
            else:
                assert {"operatorToken": []} in security, where
    send = router_document["paths"]["/api/chats/{chat_id}/messages"]["post"]
    assert {"202", "400", "404", "409", "422"} <= set(send["responses"])
    assert [p["name"] for p in send["parameters"]] == ["chat_id", "Idempotency-Key"]
    events = router_document["paths"]["/api/events"]["get"]["security"]
    assert events == [{"operatorToken": []}, {"streamTicket": []}, {"operatorTokenInQuery": []}]


AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
VIEWS: dict[str, Callable[[], dict[str, Any]]] = {
    "Chat": lambda: chat_view(Chat(id="c", channel_id="ch", queue_id="q", contact_id="k", created_at=AT)),
    "Message": lambda: message_view(
        Message(id="m", chat_id="c", channel_id="ch", direction="incoming", status="received", attachments=(FileRef(),))
    ),
    "Attachment": lambda: attachment_view(FileRef(file_id="f")),
    "Operator": lambda: operator_view(Operator(id="o", name="Ann")),
    "Queue": lambda: queue_view(Queue(id="q", name="Sales")),
    "Channel": lambda: channel_view(Channel(id="ch", name="Bot", provider="telegram", settings={"bot_token": "x"})),
    "Parked": lambda: Parked("p", "router.updates", "cause", 3, None, {}, {}).view(),
    "Note": lambda: note_view(
        Message(id="n", chat_id="c", channel_id="ch", direction="internal", type="note", status="stored")
    ),
    "Label": lambda: label_view(Label("l", "billing", "#fa0")),
    "CannedResponse": lambda: canned_view(CannedResponse("r", "hi", "Hello")),
    "SearchHit": lambda: search_hit_view(SearchEntry("m", "message", "k", "hello", ("hello",), "c"), "c"),
    "ApiToken": lambda: token_view(ApiToken(id="t", name="bi", scopes=("reports:read",), token_hash="h")),
    "AuditEntry": lambda: audit_view(AuditEntry("a", AT, None, "ADMIN_TOKEN", "POST", "/api/admin/queues", "q", 201)),
    "Webhook": lambda: subscription_view(Subscription(id="w", url="https://crm.example/in", events=(), secret="s")),
    "WebhookDelivery": lambda: attempt_view(DeliveryAttempt("d", "e", "chat.created", 1, AT, 200, "delivered", None)),
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_router_answer_schemas_have_exactly_the_views_fields(router_document: dict[str, Any], name: str) -> None:
    schema = router_document["components"]["schemas"][name]
    fields = set(VIEWS[name]())
    assert set(schema["properties"]) == fields
    assert set(schema["required"]) == fields  # the views always write every field


def _request_schema(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return schema


BODIES: list[tuple[str, str, type[BaseModel]]] = [
    ("put", "/api/operator/status", operator_api.StatusBody),
    ("post", "/api/chats/{chat_id}/messages", operator_api.SendBody),
    ("post", "/api/chats/{chat_id}/transfer", operator_api.TransferBody),
    ("post", "/api/admin/queues", QueueSettings),
    ("post", "/api/admin/operators", OperatorSettings),
    ("post", "/api/admin/channels", ChannelSettings),
    ("post", "/api/admin/parked/replay", admin_api.ReplayBody),
    ("post", "/api/chats/{chat_id}/notes", NoteBody),
    ("put", "/api/chats/{chat_id}/labels", workplace_api.ChatLabelsBody),
    ("post", "/api/admin/labels", LabelSettings),
    ("post", "/api/admin/canned-responses", SharedResponse),
    ("post", "/api/canned-responses", PersonalResponse),
    ("post", "/api/admin/tokens", TokenSettings),
    ("post", "/api/admin/webhooks", WebhookSettings),
]


@pytest.mark.parametrize(("method", "path", "model"), BODIES, ids=[f"{m} {p}" for m, p, _ in BODIES])
def test_router_request_bodies_have_exactly_their_models_fields(
    router_document: dict[str, Any], method: str, path: str, model: type[BaseModel]
) -> None:
    schema = _request_schema(router_document, method, path)
    assert set(schema["properties"]) == set(model.model_fields)
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    assert set(schema.get("required", [])) == required
    assert schema["additionalProperties"] is False  # every body model forbids other fields


def test_a_replys_attachments_are_described_with_the_contracts_fields(router_document: dict[str, Any]) -> None:
    schema = _request_schema(router_document, "post", "/api/chats/{chat_id}/messages")
    assert set(schema["properties"]["attachments"]["items"]["properties"]) == set(Attachment.model_fields)
