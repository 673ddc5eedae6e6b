"""`/openapi.json`: generated from the routes' docstrings, every route described, a valid OpenAPI 3 document."""

from typing import Any

import httpx
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omni_ingress.app import create_app as ingress_app
from omni_runtime.openapi import openapi_route, openapi_schema, undocumented
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
