"""What the operator console needs beyond the operator API: who is signed in, the names it labels chats and transfer
targets with, and the supervisors' overview of queues and operators."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_router.domain.errors import Forbidden
from omni_router.domain.views import operator_view
from omni_router.entrypoints.context import services, signed_in


async def me(request: Request) -> Response:
    """The operator signed in.
    ---
    summary: The operator signed in, as the admin API shows them
    tags: [console]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: the operator
        content: {application/json: {schema: {$ref: "#/components/schemas/Operator"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    return JSONResponse(operator_view(await signed_in(request)))


async def directory(request: Request) -> Response:
    """Channel, queue and operator names (no secrets).
    ---
    summary: The names the console labels chats and transfer targets with (never a secret)
    tags: [console]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: channels, queues and operators
        content:
          application/json:
            schema:
              type: object
              required: [channels, queues, operators]
              properties:
                channels:
                  type: array
                  items:
                    type: object
                    required: [id, name, provider]
                    properties: {id: {type: string}, name: {type: string}, provider: {type: string}}
                queues:
                  type: array
                  items:
                    type: object
                    required: [id, name]
                    properties: {id: {type: string}, name: {type: string}}
                operators:
                  type: array
                  items:
                    type: object
                    required: [id, name, status, role]
                    properties:
                      id: {type: string}
                      name: {type: string}
                      status: {type: string, enum: [online, busy, offline]}
                      role: {type: string, enum: [operator, supervisor]}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await signed_in(request)
    return JSONResponse(await services(request).console.directory())


async def overview(request: Request) -> Response:
    """Queue lengths and waiting times, operators with status and load (supervisors only).
    ---
    summary: Queue lengths and waiting times, operators with status and load (supervisors only)
    description: Computed from the open chats at the moment of the request.
    tags: [console]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: the overview
        content:
          application/json:
            schema:
              type: object
              required: [generated_at, queues, operators]
              properties:
                generated_at: {type: string, format: date-time}
                queues:
                  type: array
                  items:
                    type: object
                    required: [id, name, routing_rule, waiting, assigned, oldest_waiting_since, longest_wait_seconds]
                    properties:
                      id: {type: string}
                      name: {type: string}
                      routing_rule: {type: string}
                      waiting: {type: integer, description: open chats no operator holds yet}
                      assigned: {type: integer}
                      oldest_waiting_since: {type: string, format: date-time, nullable: true}
                      longest_wait_seconds: {type: number}
                operators:
                  type: array
                  items:
                    allOf:
                      - {$ref: "#/components/schemas/Operator"}
                      - type: object
                        required: [assigned_chats, offered_chats]
                        properties: {assigned_chats: {type: integer}, offered_chats: {type: integer}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403":
        description: "`forbidden`: the operator is not a supervisor"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    if not operator.is_supervisor:
        raise Forbidden("forbidden", "only supervisors can see the overview")
    return JSONResponse(await services(request).console.overview())


routes = [
    Route("/api/operator/me", me, methods=["GET"]),
    Route("/api/directory", directory, methods=["GET"]),
    Route("/api/supervisor/overview", overview, methods=["GET"]),
]
