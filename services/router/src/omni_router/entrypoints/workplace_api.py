"""The operator's workplace over HTTP (API.md, "Operator workplace", and the labels and canned-response rows of the
admin API): notes, labels, canned responses, search. Parse, call the workplace, answer."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_router.domain.canned import PersonalResponse, SharedResponse
from omni_router.domain.labels import MAX_LABELS_ON_A_CHAT, LabelSettings
from omni_router.domain.notes import NoteBody
from omni_router.domain.views import canned_view, chat_view, label_view, note_view, search_hit_view
from omni_router.entrypoints.context import admin, services, signed_in
from omni_router.entrypoints.operator_api import int_param
from omni_router.service_layer.workplace import Workplace
from omni_runtime.web import ApiError, parse_body, read_json

MAX_QUERY_LENGTH = 200


class ChatLabelsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: list[str] = Field(max_length=MAX_LABELS_ON_A_CHAT)


def workplace(request: Request) -> Workplace:
    return services(request).workplace


async def _object(request: Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    return body


# Notes ---------------------------------------------------------------------------------------------------------------


async def add_note(request: Request) -> Response:
    """Write an internal note in the chat.
    ---
    summary: Write an internal note in the chat (never sent to the customer)
    description: >-
      The note appears in the conversation as a message with `direction` `internal` and `type` `note`, and is never
      handed to the dispatcher. Every other operator the chat is offered to or held by hears `note.new` (on their
      queue and live stream) with the note as `data.note`.
    tags: [workplace]
    security: [{operatorToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [text]
            properties:
              text: {type: string, minLength: 1, maxLength: 16384}
    responses:
      "201":
        description: the note
        content: {application/json: {schema: {$ref: "#/components/schemas/Note"}}}
      "400": {$ref: "#/components/responses/InvalidBody"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/ChatNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    body = parse_body(NoteBody, await read_json(request))
    written = await workplace(request).add_note(request.path_params["chat_id"], operator, body.text)
    return JSONResponse(note_view(written), status_code=201)


# Labels --------------------------------------------------------------------------------------------------------------


async def create_label(request: Request) -> Response:
    """Define a label operators may put on chats.
    ---
    summary: Define a label operators may put on chats
    tags: [admin]
    security: [{adminToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [name, color]
            properties:
              name: {type: string, minLength: 1, maxLength: 64}
              color: {type: string, pattern: "^#([0-9a-fA-F]{3}){1,2}$", description: "#rgb or #rrggbb"}
    responses:
      "201":
        description: the label
        content: {application/json: {schema: {$ref: "#/components/schemas/Label"}}}
      "400": {$ref: "#/components/responses/InvalidBody"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "409":
        description: "`label_exists`: a label of that name exists"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await admin(request)
    body = parse_body(LabelSettings, await read_json(request))
    return JSONResponse(label_view(await workplace(request).create_label(body)), status_code=201)


async def list_labels(request: Request) -> Response:
    """Every label, by name.
    ---
    summary: Every label, by name
    tags: [admin]
    security: [{adminToken: []}]
    responses:
      "200":
        description: the labels (one page)
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/Label"}}
                next_cursor: {type: string, nullable: true}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await admin(request)
    return JSONResponse({"items": [label_view(x) for x in await workplace(request).labels()], "next_cursor": None})


async def delete_label(request: Request) -> Response:
    """Delete a label; chats carrying it lose it.
    ---
    summary: Delete a label; the chats carrying it lose it
    tags: [admin]
    security: [{adminToken: []}]
    responses:
      "204": {description: deleted}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404": {$ref: "#/components/responses/AdminNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await admin(request)
    await workplace(request).delete_label(request.path_params["label_id"])
    return Response(status_code=204)


async def operator_labels(request: Request) -> Response:
    """The labels operators may put on chats (for the console's picker).
    ---
    summary: The labels operators may put on chats
    tags: [workplace]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: the labels
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/Label"}}
                next_cursor: {type: string, nullable: true}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await signed_in(request)
    return JSONResponse({"items": [label_view(x) for x in await workplace(request).labels()], "next_cursor": None})


async def label_chat(request: Request) -> Response:
    """Replace the chat's labels.
    ---
    summary: Replace the chat's labels
    tags: [workplace]
    security: [{operatorToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [labels]
            properties:
              labels: {type: array, maxItems: 20, items: {type: string}, description: names from /api/admin/labels}
    responses:
      "200":
        description: the chat with its labels
        content: {application/json: {schema: {$ref: "#/components/schemas/Chat"}}}
      "400": {$ref: "#/components/responses/InvalidBody"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/ChatNotFound"}
      "422":
        description: "`unknown_labels`: names no label has (named in `detail`)"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    body = parse_body(ChatLabelsBody, await read_json(request))
    chat = await workplace(request).label_chat(request.path_params["chat_id"], operator, body.labels)
    return JSONResponse(chat_view(chat))


# Canned responses: the admin's ---------------------------------------------------------------------------------------


async def create_shared(request: Request) -> Response:
    """Create a global or a queue's canned response.
    ---
    summary: Create a global or a queue's canned response
    tags: [admin]
    security: [{adminToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [shortcut, text]
            properties:
              shortcut: {type: string, minLength: 1, maxLength: 64, description: one word; a leading / is dropped}
              text:
                type: string
                minLength: 1
                maxLength: 4096
                description: "may hold `{{contact.name}}`, `{{operator.name}}`, `{{channel.name}}`"
              queue_id: {type: string, nullable: true, description: "null: every operator's"}
    responses:
      "201":
        description: the response
        content: {application/json: {schema: {$ref: "#/components/schemas/CannedResponse"}}}
      "400":
        description: "`malformed_json`, or `invalid_body` (an unknown `queue_id` among the reasons)"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await admin(request)
    body = parse_body(SharedResponse, await read_json(request))
    return JSONResponse(canned_view(await workplace(request).create_shared(body)), status_code=201)


async def list_shared(request: Request) -> Response:
    """The global and the queues' canned responses.
    ---
    summary: The global and the queues' canned responses (?queue_id= for one queue's)
    tags: [admin]
    security: [{adminToken: []}]
    parameters:
      - {name: queue_id, in: query, schema: {type: string}}
    responses:
      "200":
        description: the responses (one page)
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/CannedResponse"}}
                next_cursor: {type: string, nullable: true}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await admin(request)
    found = await workplace(request).shared(request.query_params.get("queue_id") or None)
    return JSONResponse({"items": [canned_view(r) for r in found], "next_cursor": None})


async def get_shared(request: Request) -> Response:
    """One global or queue canned response.
    ---
    summary: One global or queue canned response
    tags: [admin]
    security: [{adminToken: []}]
    responses:
      "200":
        description: the response
        content: {application/json: {schema: {$ref: "#/components/schemas/CannedResponse"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404": {$ref: "#/components/responses/AdminNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await admin(request)
    return JSONResponse(canned_view(await workplace(request).shared_one(request.path_params["response_id"])))


async def patch_shared(request: Request) -> Response:
    """Change a global or queue canned response.
    ---
    summary: Change a global or queue canned response
    description: Checked whole as creation checks it; a refused change is 400 and changes nothing.
    tags: [admin]
    security: [{adminToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            properties:
              shortcut: {type: string, minLength: 1, maxLength: 64}
              text: {type: string, minLength: 1, maxLength: 4096}
              queue_id: {type: string, nullable: true}
    responses:
      "200":
        description: the response as changed
        content: {application/json: {schema: {$ref: "#/components/schemas/CannedResponse"}}}
      "400": {$ref: "#/components/responses/InvalidBody"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404": {$ref: "#/components/responses/AdminNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await admin(request)
    changed = await workplace(request).change_shared(request.path_params["response_id"], await _object(request))
    return JSONResponse(canned_view(changed))


async def delete_shared(request: Request) -> Response:
    """Delete a global or queue canned response.
    ---
    summary: Delete a global or queue canned response
    tags: [admin]
    security: [{adminToken: []}]
    responses:
      "204": {description: deleted}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404": {$ref: "#/components/responses/AdminNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await admin(request)
    await workplace(request).delete_shared(request.path_params["response_id"])
    return Response(status_code=204)


# Canned responses: the operator's ------------------------------------------------------------------------------------


async def usable_responses(request: Request) -> Response:
    """The canned responses this operator may use, ?q= matching shortcut or text.
    ---
    summary: The canned responses this operator may use (global, of its queues, its own)
    description: "`q` (any case) matches the shortcut or the text; shortcuts that start with it come first."
    tags: [workplace]
    security: [{operatorToken: []}]
    parameters:
      - {name: q, in: query, schema: {type: string, maxLength: 200}}
    responses:
      "200":
        description: the responses
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/CannedResponse"}}
                next_cursor: {type: string, nullable: true}
      "400": {$ref: "#/components/responses/InvalidQuery"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    q = request.query_params.get("q") or ""
    if len(q) > MAX_QUERY_LENGTH:
        raise ApiError(400, "invalid_query", f"q is at most {MAX_QUERY_LENGTH} characters")
    found = await workplace(request).usable(operator, q)
    return JSONResponse({"items": [canned_view(r) for r in found], "next_cursor": None})


async def create_personal(request: Request) -> Response:
    """Create one of the operator's own canned responses.
    ---
    summary: Create one of the operator's own canned responses
    tags: [workplace]
    security: [{operatorToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [shortcut, text]
            properties:
              shortcut: {type: string, minLength: 1, maxLength: 64}
              text: {type: string, minLength: 1, maxLength: 4096}
    responses:
      "201":
        description: the response (`scope` personal)
        content: {application/json: {schema: {$ref: "#/components/schemas/CannedResponse"}}}
      "400": {$ref: "#/components/responses/InvalidBody"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    body = parse_body(PersonalResponse, await read_json(request))
    return JSONResponse(canned_view(await workplace(request).create_personal(operator, body)), status_code=201)


async def patch_personal(request: Request) -> Response:
    """Change one of the operator's own canned responses.
    ---
    summary: Change one of the operator's own canned responses
    description: Another operator's answers 404; a global or queue one 403 (`not_personal`).
    tags: [workplace]
    security: [{operatorToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            properties:
              shortcut: {type: string, minLength: 1, maxLength: 64}
              text: {type: string, minLength: 1, maxLength: 4096}
    responses:
      "200":
        description: the response as changed
        content: {application/json: {schema: {$ref: "#/components/schemas/CannedResponse"}}}
      "400": {$ref: "#/components/responses/InvalidBody"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403":
        description: "`not_personal`: a global or queue response (the admin's)"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "404":
        description: "`not_found`: no such response, or another operator's"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    changes = await _object(request)
    changed = await workplace(request).change_personal(operator, request.path_params["response_id"], changes)
    return JSONResponse(canned_view(changed))


async def delete_personal(request: Request) -> Response:
    """Delete one of the operator's own canned responses.
    ---
    summary: Delete one of the operator's own canned responses
    tags: [workplace]
    security: [{operatorToken: []}]
    responses:
      "204": {description: deleted}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403":
        description: "`not_personal`: a global or queue response (the admin's)"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "404":
        description: "`not_found`: no such response, or another operator's"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    await workplace(request).delete_personal(operator, request.path_params["response_id"])
    return Response(status_code=204)


async def rendered_response(request: Request) -> Response:
    """A canned response's text filled for the chat.
    ---
    summary: A canned response's text with its placeholders filled for the chat
    description: >-
      `{{contact.name}}`, `{{operator.name}}` and `{{channel.name}}` are filled in one pass (a name that looks like
      a placeholder is inserted as written); unknown placeholders stay as written. Plain text, not HTML.
    tags: [workplace]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: the text
        content:
          application/json:
            schema:
              type: object
              required: [text]
              properties: {text: {type: string}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404":
        description: "`chat_not_found`, or `not_found`: no response this operator may use"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    params = request.path_params
    text = await workplace(request).rendered(params["chat_id"], operator, params["response_id"])
    return JSONResponse({"text": text})


# Search --------------------------------------------------------------------------------------------------------------


async def search(request: Request) -> Response:
    """Words in message texts and contacts' names and attributes, in what this operator may see.
    ---
    summary: Search message texts and contacts' names and attributes
    description: >-
      Hits hold every word of `q` (whole words, any case), newest first, only in chats this operator may see
      (supervisors: all); a contact is a hit through one of its chats the operator may see (`chat_id`). Each page
      reads a bounded part of the index: a page may be short, or empty, with a `next_cursor` to go on.
    tags: [workplace]
    security: [{operatorToken: []}]
    parameters:
      - {name: q, in: query, required: true, schema: {type: string, minLength: 1, maxLength: 200}}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 100, default: 20}}
      - {name: cursor, in: query, description: the `next_cursor` of the page before, schema: {type: string}}
    responses:
      "200":
        description: a page of hits
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/SearchHit"}}
                next_cursor: {type: string, nullable: true}
      "400": {$ref: "#/components/responses/InvalidQuery"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    q = request.query_params.get("q") or ""
    if not q.strip() or len(q) > MAX_QUERY_LENGTH:
        raise ApiError(400, "invalid_query", f"q must be 1 to {MAX_QUERY_LENGTH} characters")
    limit = int_param(request, "limit", 20, 1, 100)
    page = await workplace(request).search(operator, q, request.query_params.get("cursor") or None, limit)
    items = [search_hit_view(hit.entry, hit.chat_id) for hit in page.items]
    return JSONResponse({"items": items, "next_cursor": page.next_cursor})


routes = [
    Route("/api/chats/{chat_id}/notes", add_note, methods=["POST"]),
    Route("/api/chats/{chat_id}/labels", label_chat, methods=["PUT"]),
    Route("/api/labels", operator_labels, methods=["GET"]),
    Route("/api/admin/labels", create_label, methods=["POST"]),
    Route("/api/admin/labels", list_labels, methods=["GET"]),
    Route("/api/admin/labels/{label_id}", delete_label, methods=["DELETE"]),
    Route("/api/admin/canned-responses", create_shared, methods=["POST"]),
    Route("/api/admin/canned-responses", list_shared, methods=["GET"]),
    Route("/api/admin/canned-responses/{response_id}", get_shared, methods=["GET"]),
    Route("/api/admin/canned-responses/{response_id}", patch_shared, methods=["PATCH"]),
    Route("/api/admin/canned-responses/{response_id}", delete_shared, methods=["DELETE"]),
    Route("/api/canned-responses", usable_responses, methods=["GET"]),
    Route("/api/canned-responses", create_personal, methods=["POST"]),
    Route("/api/canned-responses/{response_id}", patch_personal, methods=["PATCH"]),
    Route("/api/canned-responses/{response_id}", delete_personal, methods=["DELETE"]),
    Route("/api/chats/{chat_id}/canned-responses/{response_id}", rendered_response, methods=["GET"]),
    Route("/api/search", search, methods=["GET"]),
]
