"""Outbound webhooks' subscriptions and their delivery attempts (API.md, "Supervisor, admin and integration")."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_router.domain.integration import WebhookSettings, attempt_view, subscription_view
from omni_router.entrypoints.context import authorized, services
from omni_router.entrypoints.operator_api import int_param
from omni_runtime.web import parse_body, read_json

DELIVERIES_PAGE = 100


async def subscribe(request: Request) -> Response:
    """Subscribe a URL to events; its secret signs every delivery and is never answered.
    ---
    summary: Subscribe a URL to events (outbound webhooks)
    description: >-
      Each event is POSTed as `{"id", "event", "created_at", "data"}` with `X-Omni-Signature: sha256=<hex
      HMAC-SHA256(secret, body)>` and `Idempotency-Key: <event id>`, retried with backoff and parked after the
      limit. The URL must be http(s) and (unless ALLOW_PRIVATE_FETCH) reach no loopback, private or reserved
      address, as for attachment downloads.
    tags: [admin]
    security: [{adminToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [url, events, secret]
            properties:
              url: {type: string, minLength: 1, maxLength: 2048, description: an absolute http(s) URL}
              events:
                type: array
                minItems: 1
                items:
                  type: string
                  enum: [chat.created, chat.assigned, chat.closed, message.created, message.status,
                         contact.updated, rating.created]
              secret: {type: string, minLength: 16, maxLength: 256, description: signs the deliveries; write-only}
    responses:
      "201":
        description: the subscription, without its secret
        content: {application/json: {schema: {$ref: "#/components/schemas/Webhook"}}}
      "400":
        description: >-
          `malformed_json`, `invalid_body` (refused by the model), or `invalid_url`: a URL the dispatcher would
          refuse to call (a private address, a host that does not resolve)
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await authorized(request)
    body = parse_body(WebhookSettings, await read_json(request))
    return JSONResponse(subscription_view(await services(request).webhooks.subscribe(body)), status_code=201)


async def list_webhooks(request: Request) -> Response:
    """The subscriptions (never their secrets).
    ---
    summary: The outbound webhooks' subscriptions, without their secrets
    tags: [admin]
    security: [{adminToken: []}]
    responses:
      "200":
        description: the subscriptions, oldest first
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/Webhook"}}
                next_cursor: {type: string, nullable: true, enum: [null]}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await authorized(request)
    found = await services(request).webhooks.subscriptions()
    return JSONResponse({"items": [subscription_view(s) for s in found], "next_cursor": None})


async def unsubscribe(request: Request) -> Response:
    """Delete a subscription: what is still queued for it is not delivered.
    ---
    summary: Delete a subscription
    description: >-
      Deliveries still queued are not posted (the dispatcher records them `failed`, "the subscription is
      deleted"); the attempts made stay listed.
    tags: [admin]
    security: [{adminToken: []}]
    parameters:
      - {name: webhook_id, in: path, required: true, schema: {type: string}}
    responses:
      "204": {description: deleted}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404": {$ref: "#/components/responses/AdminNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await authorized(request)
    await services(request).webhooks.delete(request.path_params["webhook_id"])
    return Response(status_code=204)


async def deliveries(request: Request) -> Response:
    """Every delivery attempt of a subscription, in the order made.
    ---
    summary: Every delivery attempt of a subscription, in the order made
    description: >-
      One entry per attempt (the dispatcher's `webhook_deliveries`): `retrying` while it will be tried again,
      `delivered`, or `failed` (refused, or parked after the retries; a replay continues the attempt count).
    tags: [admin]
    security: [{adminToken: []}]
    parameters:
      - {name: webhook_id, in: path, required: true, schema: {type: string}}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 1000, default: 100}}
      - {name: cursor, in: query, description: "`next_cursor` of the page before", schema: {type: string}}
    responses:
      "200":
        description: a page of attempts
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/WebhookDelivery"}}
                next_cursor: {type: string, nullable: true}
      "400": {$ref: "#/components/responses/InvalidQuery"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404": {$ref: "#/components/responses/AdminNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await authorized(request)
    limit = int_param(request, "limit", DELIVERIES_PAGE, 1, 1000)
    cursor = request.query_params.get("cursor") or None
    found, after = await services(request).webhooks.deliveries(request.path_params["webhook_id"], cursor, limit)
    return JSONResponse({"items": [attempt_view(a) for a in found], "next_cursor": after})


routes = [
    Route("/api/admin/webhooks", subscribe, methods=["POST"]),
    Route("/api/admin/webhooks", list_webhooks, methods=["GET"]),
    Route("/api/admin/webhooks/{webhook_id}", unsubscribe, methods=["DELETE"]),
    Route("/api/admin/webhooks/{webhook_id}/deliveries", deliveries, methods=["GET"]),
]
