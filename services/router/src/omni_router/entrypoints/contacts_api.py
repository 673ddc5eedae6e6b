"""Contacts (API.md, "Operator workplace"): the card, its edits, the contact's chats across channels, and the admin's
merge of two contacts that are one person. Parse, call the contact cards, answer."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_router.domain.contacts import check_attributes
from omni_router.domain.errors import Invalid
from omni_router.domain.views import chat_view
from omni_router.entrypoints.context import admin, services, signed_in
from omni_runtime.web import parse_body, read_json


class ContactChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    attributes: dict[str, Any] | None = None


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into: str = Field(min_length=1, max_length=64)
    from_: str = Field(alias="from", min_length=1, max_length=64)


async def get_contact(request: Request) -> Response:
    """A contact's card.
    ---
    summary: A contact's card, with its identities on each channel
    description: "To an operator who may see one of the contact's chats (supervisors: any contact)."
    tags: [contacts]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: the contact
        content: {application/json: {schema: {$ref: "#/components/schemas/Contact"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/ContactNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    return JSONResponse(await services(request).contacts.card(request.path_params["contact_id"], operator))


async def patch_contact(request: Request) -> Response:
    """Change a contact's name or attributes.
    ---
    summary: Change a contact's name and/or attributes
    description: >-
      `attributes` replaces the contact's attributes as a whole: a flat object of strings (at most 50, names of 1 to
      64 characters, values of at most 1000). A refused change is 400 and changes nothing. A new name is also the
      name its chats show.
    tags: [contacts]
    security: [{operatorToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            properties:
              name: {type: string, minLength: 1, maxLength: 200}
              attributes:
                type: object
                maxProperties: 50
                additionalProperties: {type: string, maxLength: 1000}
    responses:
      "200":
        description: the contact as changed
        content: {application/json: {schema: {$ref: "#/components/schemas/Contact"}}}
      "400": {$ref: "#/components/responses/InvalidBody"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/ContactNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    change = parse_body(ContactChange, await read_json(request))
    if change.name is None and change.attributes is None:
        raise Invalid("invalid_body", "change name or attributes")
    if change.name is not None and not change.name.strip():
        raise Invalid("invalid_body", "name: must not be blank")
    attributes = check_attributes(change.attributes) if change.attributes is not None else None
    card = await services(request).contacts.edit(request.path_params["contact_id"], operator, change.name, attributes)
    return JSONResponse(card)


async def contact_chats(request: Request) -> Response:
    """The contact's chats across its channels, newest first.
    ---
    summary: Every chat of the contact across its channels, newest first
    description: >-
      All of them (closed ones too, readable with `GET /api/chats/{chat_id}/messages`) to an operator who may see one
      open chat of the contact, or to a supervisor; otherwise the contact's chats the operator may see.
    tags: [contacts]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: the chats
        content:
          application/json:
            schema:
              type: object
              required: [items]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/Chat"}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/ContactNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    chats = await services(request).contacts.chats(request.path_params["contact_id"], operator)
    return JSONResponse({"items": [chat_view(chat, unread_count=unread) for chat, unread in chats]})


async def merge_contacts(request: Request) -> Response:
    """Merge two contacts that are one person.
    ---
    summary: Merge contact `from` into contact `into`
    description: >-
      `into` takes `from`'s identities (its sender on each channel finds `into` from now on), chats and attributes
      (where `into` has none of that name); `from` is gone (404). Safe to repeat: the same merge again, after it
      was interrupted or done, completes it and answers the same.
    tags: [admin]
    security: [{adminToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [into, from]
            properties:
              into: {type: string, description: the contact kept}
              from: {type: string, description: the contact merged into it}
    responses:
      "200":
        description: the contact kept
        content: {application/json: {schema: {$ref: "#/components/schemas/Contact"}}}
      "400": {$ref: "#/components/responses/InvalidBody"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404": {$ref: "#/components/responses/ContactNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    await admin(request)
    body = parse_body(MergeBody, await read_json(request))
    return JSONResponse(await services(request).contacts.merge(body.into, body.from_))


routes = [
    Route("/api/contacts/{contact_id}", get_contact, methods=["GET"]),
    Route("/api/contacts/{contact_id}", patch_contact, methods=["PATCH"]),
    Route("/api/contacts/{contact_id}/chats", contact_chats, methods=["GET"]),
    Route("/api/admin/contacts/merge", merge_contacts, methods=["POST"]),
]
