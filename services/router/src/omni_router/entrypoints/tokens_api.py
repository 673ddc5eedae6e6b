"""The admin API's own access: named API tokens with scopes, and the audit log of admin writes (API.md,
"Supervisor, admin and integration")."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_router.domain.tokens import TokenSettings, audit_view, token_view
from omni_router.entrypoints.context import authorized, services
from omni_router.entrypoints.operator_api import int_param
from omni_runtime.web import parse_body, read_json

AUDIT_PAGE = 100


async def create_token(request: Request) -> Response:
    """Create a named API token; the answer carries the token, this once.
    ---
    summary: Create a named API token; the answer carries it, this once
    description: >-
      Only the token's hash is stored. `admin` opens everything under /api/admin; `reports:read` the reports.
      The bootstrap `ADMIN_TOKEN` keeps every scope.
    tags: [admin]
    security: [{adminToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [name, scopes]
            properties:
              name: {type: string, minLength: 1, maxLength: 200}
              scopes:
                type: array
                minItems: 1
                maxItems: 2
                items: {type: string, enum: [admin, reports:read]}
    responses:
      "201":
        description: the token, with its secret
        content:
          application/json:
            schema:
              allOf:
                - {$ref: "#/components/schemas/ApiToken"}
                - type: object
                  required: [token]
                  properties: {token: {type: string, description: the bearer token; never shown again}}
      "400": {$ref: "#/components/responses/InvalidBody"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await authorized(request)
    token, secret = await services(request).tokens.create(parse_body(TokenSettings, await read_json(request)))
    return JSONResponse({**token_view(token), "token": secret}, status_code=201)


async def list_tokens(request: Request) -> Response:
    """The API tokens (never their secrets).
    ---
    summary: The API tokens, without their secrets
    tags: [admin]
    security: [{adminToken: []}]
    responses:
      "200":
        description: the tokens, oldest first
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/ApiToken"}}
                next_cursor: {type: string, nullable: true, enum: [null]}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await authorized(request)
    tokens = await services(request).tokens.list()
    return JSONResponse({"items": [token_view(token) for token in tokens], "next_cursor": None})


async def revoke_token(request: Request) -> Response:
    """Revoke an API token: every router refuses it from its next request on (no cache).
    ---
    summary: Revoke an API token
    description: Tokens are read at every request, so every router refuses a revoked one at once (401).
    tags: [admin]
    security: [{adminToken: []}]
    parameters:
      - {name: token_id, in: path, required: true, schema: {type: string}}
    responses:
      "204": {description: revoked}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404": {$ref: "#/components/responses/AdminNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await authorized(request)
    await services(request).tokens.revoke(request.path_params["token_id"])
    return Response(status_code=204)


async def audit(request: Request) -> Response:
    """Every admin write, newest first: who, what, on which item, how it was answered.
    ---
    summary: The audit log of admin writes, newest first
    description: >-
      Every POST, PUT, PATCH and DELETE under /api/admin, refused ones included (their status says so); the actor
      is the API token's id and name (`token_id` null and name `ADMIN_TOKEN` for the bootstrap token; both null
      for a caller not identified). Never a body, a query or a token.
    tags: [admin]
    security: [{adminToken: []}]
    parameters:
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 1000, default: 100}}
      - {name: cursor, in: query, description: "`next_cursor` of the page before", schema: {type: string}}
    responses:
      "200":
        description: a page of entries
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/AuditEntry"}}
                next_cursor: {type: string, nullable: true}
      "400": {$ref: "#/components/responses/InvalidQuery"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await authorized(request)
    limit = int_param(request, "limit", AUDIT_PAGE, 1, 1000)
    entries, cursor = await services(request).audit.page(request.query_params.get("cursor") or None, limit)
    return JSONResponse({"items": [audit_view(entry) for entry in entries], "next_cursor": cursor})


routes = [
    Route("/api/admin/tokens", create_token, methods=["POST"]),
    Route("/api/admin/tokens", list_tokens, methods=["GET"]),
    Route("/api/admin/tokens/{token_id}", revoke_token, methods=["DELETE"]),
    Route("/api/admin/audit", audit, methods=["GET"]),
]
