"""What the console's supervisor view reaches with a supervisor's operator token: the reports' summary, the queues,
and a queue's business hours, greeting, out-of-hours answer and CSAT question (nothing else of a queue)."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_router.domain.admin import SUPERVISOR_QUEUE_FIELDS
from omni_router.domain.errors import Forbidden, Invalid
from omni_router.domain.model import Queue
from omni_router.domain.tokens import Principal
from omni_router.domain.views import queue_view
from omni_router.entrypoints.context import ACTOR, services, signed_in
from omni_router.entrypoints.reports_api import answer_summary
from omni_runtime.web import read_json


async def _supervisor(request: Request) -> None:
    operator = await signed_in(request)
    # The audit trail records the supervisor's writes under their operator id (no API token).
    setattr(request.state, ACTOR, Principal(None, f"operator:{operator.id}", ()))
    if not operator.is_supervisor:
        raise Forbidden("forbidden", "only supervisors can use the supervisor view")


async def summary(request: Request) -> Response:
    """The reports' summary, for the supervisor view's charts.
    ---
    summary: The reports' summary for the supervisor view (as GET /api/admin/reports/summary)
    tags: [console]
    security: [{operatorToken: []}]
    parameters:
      - {name: from, in: query, schema: {type: string}, description: "ISO 8601; default: 30 days before `to`"}
      - {name: to, in: query, schema: {type: string}, description: "exclusive; default: now"}
      - {name: queue_id, in: query, schema: {type: string}}
      - {name: operator_id, in: query, schema: {type: string}}
    responses:
      "200":
        description: the figures
        content: {application/json: {schema: {$ref: "#/components/schemas/ReportSummary"}}}
      "400": {$ref: "#/components/responses/InvalidQuery"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403":
        description: "`forbidden`: the operator is not a supervisor"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await _supervisor(request)
    return await answer_summary(request, services(request).supervision)


async def queues(request: Request) -> Response:
    """The queues with their settings, for the supervisor view's business hours editor.
    ---
    summary: The queues with their settings (supervisors)
    tags: [console]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: every queue
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/Queue"}}
                next_cursor: {type: string, nullable: true}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403":
        description: "`forbidden`: the operator is not a supervisor"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await _supervisor(request)
    found = await services(request).admin.list("queues")
    return JSONResponse({"items": [queue_view(q) for q in found if isinstance(q, Queue)], "next_cursor": None})


async def change_queue(request: Request) -> Response:
    """Change a queue's business hours, greeting, out-of-hours answer or CSAT question.
    ---
    summary: Change a queue's business hours, greeting, out-of-hours answer or CSAT question (supervisors)
    description: Checked as the admin's PATCH checks it; a refused change changes nothing.
    tags: [console]
    security: [{operatorToken: []}]
    parameters:
      - {name: queue_id, in: path, required: true, schema: {type: string}}
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            minProperties: 1
            properties:
              business_hours: {$ref: "#/components/schemas/BusinessHours"}
              greeting_text: {type: string, nullable: true, minLength: 1, maxLength: 4096}
              out_of_hours_text: {type: string, nullable: true, minLength: 1, maxLength: 4096}
              csat: {$ref: "#/components/schemas/Csat"}
    responses:
      "200":
        description: the queue after the change
        content: {application/json: {schema: {$ref: "#/components/schemas/Queue"}}}
      "400": {$ref: "#/components/responses/InvalidBody"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403":
        description: "`forbidden`: the operator is not a supervisor"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "404": {$ref: "#/components/responses/AdminNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await _supervisor(request)
    changes = await read_json(request)
    if isinstance(changes, dict) and set(changes) - SUPERVISOR_QUEUE_FIELDS:
        others = ", ".join(sorted(set(changes) - SUPERVISOR_QUEUE_FIELDS))
        raise Invalid(
            "invalid_body", f"supervisors may change only {', '.join(sorted(SUPERVISOR_QUEUE_FIELDS))}: {others}"
        )
    changed = await services(request).admin.change("queues", request.path_params["queue_id"], changes)
    assert isinstance(changed, Queue)
    return JSONResponse(queue_view(changed))


routes = [
    Route("/api/supervisor/reports/summary", summary, methods=["GET"]),
    Route("/api/supervisor/queues", queues, methods=["GET"]),
    Route("/api/supervisor/queues/{queue_id}", change_queue, methods=["PATCH"]),
]
