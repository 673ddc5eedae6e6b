"""Supervisors' reports over HTTP: the summary of a period and the chats as CSV (API.md, "Supervisor, admin and
integration")."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from omni_router.domain.reports import ReportFilter, period, summary_view
from omni_router.entrypoints.context import authorized, services
from omni_router.service_layer.reports import Supervision

# The scope a token needs for these endpoints (`admin` and the bootstrap ADMIN_TOKEN open it too).
REPORTS_SCOPE = "reports:read"


async def supervision(request: Request) -> Supervision:
    """The reports, for a request whose token opens `reports:read`: 401 for no or an unknown token, 403 for an
    operator's token or one without the scope."""
    await authorized(request, REPORTS_SCOPE)
    return services(request).supervision


async def summary(request: Request) -> Response:
    """A period's figures: volumes, first response and resolution percentiles, CSAT, chats by day.
    ---
    summary: A period's figures (volumes, response and resolution percentiles, CSAT, by day)
    description: >-
      Chats opened in the period count as opened (with their messages in and out and their first response: the
      chat's creation to the first operator reply); chats closed in it as closed (with their resolution time, the
      creation to the closing, and their rating). Percentiles by nearest rank, in seconds; `by_day` lists every UTC
      day of the period. Scope `reports:read` (the admin token has it).
    tags: [admin]
    security: [{adminToken: []}]
    parameters:
      - name: from
        in: query
        schema: {type: string}
        description: "ISO 8601 date or date-time (UTC if no offset); default: 30 days before `to`"
      - {name: to, in: query, schema: {type: string}, description: "exclusive; default: now"}
      - {name: queue_id, in: query, schema: {type: string}}
      - {name: operator_id, in: query, schema: {type: string}, description: the chats held by this operator}
    responses:
      "200":
        description: the figures
        content:
          application/json:
            schema: {$ref: "#/components/schemas/ReportSummary"}
      "400": {$ref: "#/components/responses/InvalidQuery"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    return await answer_summary(request, await supervision(request))


async def answer_summary(request: Request, reports: Supervision) -> Response:
    """The summary the query asks for (the admin's endpoint and the supervisors' console share it)."""
    query = request.query_params
    covered = period(query.get("from"), query.get("to"), services(request).admin.now())
    filters = ReportFilter(covered, query.get("queue_id") or None, query.get("operator_id") or None)
    return JSONResponse(summary_view(await reports.summary(filters), covered))


async def chats_csv(request: Request) -> Response:
    """Every chat opened in a period, one CSV row each, streamed.
    ---
    summary: Every chat opened in a period as CSV
    description: >-
      Columns `chat_id,channel,queue,contact,operator,status,created_at,first_response_at,closed_at,messages_in,
      messages_out,rating,labels`; names, not ids, for channel, queue and operator. A cell that a spreadsheet would
      run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`. Scope
      `reports:read` (the admin token has it).
    tags: [admin]
    security: [{adminToken: []}]
    parameters:
      - name: from
        in: query
        schema: {type: string}
        description: "ISO 8601 date or date-time; default: 30 days before `to`"
      - {name: to, in: query, schema: {type: string}, description: "exclusive; default: now"}
    responses:
      "200":
        description: "the rows, streamed (`Content-Disposition: attachment`)"
        content: {text/csv: {schema: {type: string}}}
      "400": {$ref: "#/components/responses/InvalidQuery"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    reports = await supervision(request)
    covered = period(request.query_params.get("from"), request.query_params.get("to"), services(request).admin.now())
    return StreamingResponse(
        reports.chats_csv(covered),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": "attachment; filename*=UTF-8''chats.csv", "Cache-Control": "no-store"},
    )


routes = [
    Route("/api/admin/reports/summary", summary, methods=["GET"]),
    Route("/api/admin/reports/chats.csv", chats_csv, methods=["GET"]),
]
