"""`GET /openapi.json`: a service's OpenAPI 3 description, generated from its routes. Each endpoint documents itself
in its docstring: prose, then `---`, then the operation as YAML (`summary`, `parameters`, `responses`, ...); an
endpoint serving several methods keys one operation per method (`get:`, `post:`). A service may add components
(shared `schemas`, `securitySchemes`) that its operations refer to by `$ref` or in `security`."""

import re
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.schemas import EndpointInfo, SchemaGenerator
from starlette.types import ASGIApp

OPENAPI_VERSION = "3.0.3"
METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

# Every error answer of every service (`omni_runtime.web.error_response`); operations refer to it by `$ref`.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "a stable code, e.g. `invalid_signature`"},
        "detail": {"type": "string", "description": "a sentence for people"},
    },
}


class _Generator(SchemaGenerator):
    def operation(self, endpoint: EndpointInfo) -> dict[str, Any]:
        parsed = self.parse_docstring(endpoint.func)
        if parsed and set(parsed) <= METHODS:
            chosen = parsed.get(endpoint.http_method)
            parsed = chosen if isinstance(chosen, dict) else {}
        return _with_path_parameters(dict(parsed), endpoint.path) if parsed else {}

    def get_schema(self, routes: list[BaseRoute]) -> dict[str, Any]:
        schema = dict(self.base_schema)
        paths: dict[str, dict[str, Any]] = {}
        for endpoint in self.get_endpoints(routes):
            operation = self.operation(endpoint)
            if operation:
                paths.setdefault(endpoint.path, {})[endpoint.http_method] = operation
        schema["paths"] = paths
        return schema


def _with_path_parameters(operation: dict[str, Any], path: str) -> dict[str, Any]:
    """Exactly the path's own `{name}` parameters: those the docstring describes, the rest as plain strings. One
    handler may serve several paths (`/webhooks/{provider}` and `/webhooks/{provider}/{channel_id}`)."""
    names = re.findall(r"{(\w+)}", path)
    declared = operation.get("parameters", [])
    described = {p["name"]: p for p in declared if p.get("in") == "path"}
    others = [p for p in declared if p.get("in") != "path"]
    own = [
        described.get(name, {"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
        for name in names
    ]
    if own or others:
        operation["parameters"] = own + others
    return operation


Components = Mapping[str, Mapping[str, Any]]


def _generator(title: str, version: str, components: Components | None = None) -> _Generator:
    merged: dict[str, dict[str, Any]] = {"schemas": {"Error": ERROR_SCHEMA}}
    for section, entries in (components or {}).items():
        merged[section] = {**merged.get(section, {}), **entries}
    return _Generator({"openapi": OPENAPI_VERSION, "info": {"title": title, "version": version}, "components": merged})


def _routes(app_or_routes: ASGIApp | Sequence[BaseRoute]) -> list[BaseRoute]:
    if isinstance(app_or_routes, Sequence):
        return list(app_or_routes)
    routes: list[BaseRoute] = getattr(app_or_routes, "routes", [])
    return routes


def openapi_schema(
    app_or_routes: ASGIApp | Sequence[BaseRoute], title: str, version: str, components: Components | None = None
) -> dict[str, Any]:
    """The OpenAPI document of these routes (or of this app's), from their docstrings."""
    return _generator(title, version, components).get_schema(_routes(app_or_routes))


def undocumented(app_or_routes: ASGIApp | Sequence[BaseRoute]) -> list[str]:
    """`METHOD /path` of every route whose docstring describes no operation (a summary or description, and its
    responses), for a test that keeps the document complete."""
    generator = _generator("", "")
    missing = []
    for endpoint in generator.get_endpoints(_routes(app_or_routes)):
        operation = generator.operation(endpoint)
        described = bool(operation.get("summary") or operation.get("description"))
        if not (described and operation.get("responses")):
            missing.append(f"{endpoint.http_method.upper()} {endpoint.path}")
    return missing


def openapi_route(title: str, version: str, path: str = "/openapi.json", components: Components | None = None) -> Route:
    """The route serving the app's own description, built once on first request (routes do not change);
    `components` are added beside the `Error` schema every service shares."""
    generator = _generator(title, version, components)
    cache: dict[str, Any] = {}

    async def openapi(request: Request) -> Response:
        """The service's OpenAPI description.
        ---
        summary: This service's OpenAPI 3 description, generated from its routes
        tags: [meta]
        responses:
          "200":
            description: the OpenAPI document
            content:
              application/json:
                schema: {type: object}
        """
        if "schema" not in cache:
            cache["schema"] = generator.get_schema(request.app.routes)
        return JSONResponse(cache["schema"])

    return Route(path, openapi, methods=["GET"])
