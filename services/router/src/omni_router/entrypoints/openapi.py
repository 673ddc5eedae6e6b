"""`GET /openapi.json`: the router's OpenAPI 3 description, generated from its endpoints' docstrings
(`omni_runtime.openapi`). The shapes several endpoints share are components here: the answers of `domain/views.py`
(a unit test keeps their properties the views' keys), the two bearer tokens as security schemes, and the refusals
most endpoints can answer."""

from importlib.metadata import version
from typing import Any, cast

import yaml
from starlette.routing import Route

from omni_runtime.openapi import openapi_route

TITLE = "omnichannel router"

COMPONENTS = cast(
    dict[str, dict[str, Any]],
    yaml.safe_load(
        """
securitySchemes:
  operatorToken:
    type: http
    scheme: bearer
    description: an operator's token, answered once by `POST /api/admin/operators`
  adminToken:
    type: http
    scheme: bearer
    description: >-
      the `ADMIN_TOKEN` setting (every scope), or an API token from `POST /api/admin/tokens` whose scopes open the
      endpoint (`admin`: everything under /api/admin)
  streamTicket:
    type: apiKey
    in: query
    name: ticket
    description: a single-use ticket from `POST /api/events/ticket` (60 s), for browsers' EventSource
  operatorTokenInQuery:
    type: apiKey
    in: query
    name: token
    description: an operator's token in the URL, still taken from older consoles (logs redact it); prefer a ticket

schemas:
  Chat:
    type: object
    required: [id, channel_id, queue_id, contact_id, contact, status, operator_id, unread_count, created_at,
               last_message_at, closed_at, labels, first_response_at, not_before, rating]
    properties:
      id: {type: string}
      channel_id: {type: string}
      queue_id: {type: string, nullable: true}
      contact_id: {type: string, description: "the contact's id (`GET /api/contacts/{contact_id}`)"}
      contact:
        type: object
        required: [id, name]
        properties:
          id: {type: string}
          name: {type: string, nullable: true}
      status: {type: string, enum: [new, assigned, closed]}
      operator_id: {type: string, nullable: true, description: who holds it (assigned chats)}
      unread_count: {type: integer, minimum: 0, description: customer messages not yet marked read}
      created_at: {type: string, format: date-time, nullable: true}
      last_message_at: {type: string, format: date-time, nullable: true}
      closed_at: {type: string, format: date-time, nullable: true}
      labels: {type: array, items: {type: string}, description: names of the admin's labels put on the chat}
      first_response_at: {type: string, format: date-time, nullable: true, description: the first operator reply}
      not_before:
        type: string
        format: date-time
        nullable: true
        description: opened outside its queue's business hours, offered from then on
      rating: {$ref: "#/components/schemas/Rating"}
  Rating:
    type: object
    nullable: true
    description: the customer's answer to the CSAT question
    required: [score, comment, created_at]
    properties:
      score: {type: integer, minimum: 1, maximum: 5}
      comment: {type: string}
      created_at: {type: string, format: date-time, nullable: true}
  BusinessHours:
    type: object
    nullable: true
    description: "none: always open"
    required: [timezone]
    properties:
      timezone: {type: string, description: "an IANA time zone, e.g. Europe/Berlin"}
      weekly:
        type: object
        description: "`mon`..`sun`: lists of [start, end] as HH:MM, 24 h, end exclusive (24:00 ends the day)"
        additionalProperties:
          type: array
          items: {type: array, items: {type: string}, minItems: 2, maxItems: 2}
      holidays: {type: array, items: {type: string, format: date}}
  Csat:
    type: object
    nullable: true
    required: [enabled]
    properties:
      enabled: {type: boolean}
      question: {type: string}
  ReportSummary:
    type: object
    required: [chats_opened, chats_closed, messages_in, messages_out, first_response_seconds,
               resolution_seconds, csat, by_day]
    properties:
      chats_opened: {type: integer}
      chats_closed: {type: integer}
      messages_in: {type: integer}
      messages_out: {type: integer, description: operators' replies (not the router's own answers)}
      first_response_seconds: {$ref: "#/components/schemas/Percentiles"}
      resolution_seconds: {$ref: "#/components/schemas/Percentiles"}
      csat:
        type: object
        properties:
          responses: {type: integer}
          average: {type: number, nullable: true}
      by_day:
        type: array
        items:
          type: object
          properties:
            date: {type: string, format: date}
            chats_opened: {type: integer}
            chats_closed: {type: integer}
  Percentiles:
    type: object
    required: [p50, p90]
    properties:
      p50: {type: number, nullable: true, description: "seconds; null: no such chats in the period"}
      p90: {type: number, nullable: true}
  Contact:
    type: object
    required: [id, name, photo_url, attributes, identities, created_at]
    properties:
      id: {type: string}
      name: {type: string}
      photo_url: {type: string, nullable: true}
      attributes:
        type: object
        description: a flat object of strings (email, phone, CRM id, ...)
        additionalProperties: {type: string}
      identities:
        type: array
        description: the contact's id on each channel's messenger (its own first, then those merged into it)
        items:
          type: object
          required: [channel_id, provider, external_id]
          properties:
            channel_id: {type: string}
            provider: {type: string, nullable: true, description: null when the channel is deleted}
            external_id: {type: string}
      created_at: {type: string, format: date-time, nullable: true}
  Attachment:
    type: object
    required: [file_id, file_name, content_type, size, status, failure_reason]
    properties:
      file_id: {type: string, nullable: true, description: "our id, the one `GET /api/files/{file_id}` serves"}
      file_name: {type: string, nullable: true}
      content_type: {type: string, nullable: true}
      size: {type: integer, nullable: true}
      status: {type: string, enum: [pending, stored, failed]}
      failure_reason: {type: string, nullable: true}
  Message:
    type: object
    required: [id, chat_id, direction, type, text, attachments, template, status, failure_reason, created_at,
               sent_at, author_id]
    properties:
      id: {type: string}
      chat_id: {type: string}
      direction:
        type: string
        enum: [incoming, outgoing, internal]
        description: "`internal`: an operators' note (`type` note), never sent to the customer"
      type: {type: string, enum: [text, image, video, audio, file, location, sticker, template, note]}
      text: {type: string, nullable: true}
      attachments: {type: array, items: {$ref: "#/components/schemas/Attachment"}}
      template:
        type: object
        nullable: true
        description: "a template reply's `{name, language, parameters}`"
        properties:
          name: {type: string}
          language: {type: string, nullable: true}
          parameters: {type: array, items: {type: string}}
      status:
        type: string
        enum: [received, queued, sent, delivered, read, failed, stored]
        description: >-
          `received` for customer messages; a reply goes `queued`, `sent`, then `delivered` / `read`, or `failed`;
          a note is `stored`
      failure_reason: {type: string, nullable: true}
      created_at: {type: string, format: date-time, nullable: true}
      sent_at: {type: string, format: date-time, nullable: true}
      author_id: {type: string, nullable: true, description: the operator who wrote a reply or a note}
  Note:
    type: object
    required: [id, chat_id, author_id, text, created_at]
    properties:
      id: {type: string}
      chat_id: {type: string}
      author_id: {type: string}
      text: {type: string}
      created_at: {type: string, format: date-time, nullable: true}
  Label:
    type: object
    required: [id, name, color, created_at]
    properties:
      id: {type: string}
      name: {type: string}
      color: {type: string, description: "#rgb or #rrggbb, lower case"}
      created_at: {type: string, format: date-time, nullable: true}
  CannedResponse:
    type: object
    required: [id, shortcut, text, scope, queue_id, created_at]
    properties:
      id: {type: string}
      shortcut: {type: string}
      text: {type: string, description: "as written, placeholders unfilled"}
      scope: {type: string, enum: [global, queue, personal]}
      queue_id: {type: string, nullable: true}
      created_at: {type: string, format: date-time, nullable: true}
  SearchHit:
    type: object
    required: [kind, chat_id, contact_id, message_id, text, created_at]
    properties:
      kind: {type: string, enum: [message, contact]}
      chat_id: {type: string, nullable: true, description: "the message's chat, or a chat of the contact one may see"}
      contact_id: {type: string}
      message_id: {type: string, nullable: true}
      text: {type: string, description: "the message's text, or the contact's name and attribute values"}
      created_at: {type: string, format: date-time, nullable: true}
  Operator:
    type: object
    required: [id, name, role, max_chats, active_chats, status, created_at]
    properties:
      id: {type: string}
      name: {type: string}
      role: {type: string, enum: [operator, supervisor]}
      max_chats: {type: integer, nullable: true}
      active_chats: {type: integer, description: chats held plus offers holding a unit of max_chats}
      status: {type: string, enum: [online, busy, offline]}
      created_at: {type: string, format: date-time, nullable: true}
  Queue:
    type: object
    required: [id, name, routing_rule, completion_timeout_minutes, operator_ids, on_operator_offline,
               offer_timeout_seconds, business_hours, greeting_text, out_of_hours_text, csat, created_at, actions]
    properties:
      id: {type: string}
      name: {type: string}
      routing_rule: {type: string, description: "`to_all`, `to_available` or a registered custom rule"}
      completion_timeout_minutes: {type: number, nullable: true}
      operator_ids: {type: array, items: {type: string}}
      on_operator_offline: {type: string, enum: [keep, return]}
      offer_timeout_seconds: {type: number, nullable: true, description: "unset: OFFER_TIMEOUT_SECONDS"}
      business_hours: {$ref: "#/components/schemas/BusinessHours"}
      greeting_text: {type: string, nullable: true, description: a new chat's customer is told this once inside hours}
      out_of_hours_text:
        type: string
        nullable: true
        description: a new chat's customer is told this once outside hours (the chat waits for the next opening)
      csat: {$ref: "#/components/schemas/Csat"}
      created_at: {type: string, format: date-time, nullable: true}
      actions:
        type: array
        items: {type: string, enum: [accept, reply, close, transfer, decline, note, label]}
        description: the actions its operators may be offered and take (all, unless the queue names fewer)
  Channel:
    type: object
    required: [id, name, provider, source, queue_id, is_active, settings, secrets_set, registration, created_at]
    properties:
      id: {type: string}
      name: {type: string}
      provider: {type: string}
      source: {type: string, description: "the channel's id at its messenger (bot id, page id, number, ...)"}
      queue_id: {type: string, nullable: true}
      is_active: {type: boolean}
      settings: {type: object, description: the provider's settings without the secret ones}
      secrets_set: {type: array, items: {type: string}, description: which secret settings are set (never their values)}
      registration:
        type: object
        nullable: true
        description: the outcome of the last `register`
        properties:
          ok: {type: boolean}
          detail: {type: string}
          at: {type: string, format: date-time}
      created_at: {type: string, format: date-time, nullable: true}
  AdminItem:
    oneOf:
      - {$ref: "#/components/schemas/Queue"}
      - {$ref: "#/components/schemas/Operator"}
      - {$ref: "#/components/schemas/Channel"}
  Parked:
    type: object
    required: [id, queue, cause, attempts, parked_at, body]
    properties:
      id: {type: string, description: the message's id}
      queue: {type: string, description: the consumer queue it was parked from}
      cause: {type: string}
      attempts: {type: integer}
      parked_at: {type: string, nullable: true}
      body: {description: "the message as it was (JSON when it parses, else text)"}
  ApiToken:
    type: object
    required: [id, name, scopes, created_at]
    properties:
      id: {type: string}
      name: {type: string}
      scopes: {type: array, items: {type: string, enum: [admin, reports:read]}}
      created_at: {type: string, format: date-time, nullable: true}
  AuditEntry:
    type: object
    required: [id, at, actor, method, path, target_id, status]
    properties:
      id: {type: string}
      at: {type: string, format: date-time}
      actor:
        type: object
        required: [token_id, name]
        properties:
          token_id: {type: string, nullable: true, description: "null: the bootstrap ADMIN_TOKEN, or unknown"}
          name: {type: string, nullable: true, description: "the token's name; null: a caller not identified"}
      method: {type: string, enum: [POST, PUT, PATCH, DELETE]}
      path: {type: string}
      target_id: {type: string, nullable: true}
      status: {type: integer, description: the HTTP status the write was answered with}
  Webhook:
    type: object
    required: [id, url, events, active, created_at]
    properties:
      id: {type: string}
      url: {type: string}
      events: {type: array, items: {type: string}}
      active: {type: boolean}
      created_at: {type: string, format: date-time, nullable: true}
  WebhookDelivery:
    type: object
    required: [id, event_id, event, attempt, at, status_code, outcome, error]
    properties:
      id: {type: string}
      event_id: {type: string, description: "the event's id (the receivers' Idempotency-Key)"}
      event: {type: string}
      attempt: {type: integer, minimum: 1}
      at: {type: string, format: date-time, nullable: true}
      status_code: {type: integer, nullable: true, description: "the receiver's HTTP status; null without an answer"}
      outcome: {type: string, enum: [delivered, retrying, failed]}
      error: {type: string, nullable: true}
  Count:
    type: object
    required: [count]
    properties:
      count: {type: integer, minimum: 0}

responses:
  Unauthorized:
    description: no bearer token, or an unknown one
    content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
  AdminForbidden:
    description: >-
      an operator's token (`forbidden`), or an API token whose scopes do not open this endpoint
      (`insufficient_scope`)
    content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
  ContactNotFound:
    description: "`contact_not_found`: no such contact (merged away), or none this operator may see (the same answer)"
    content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
  ChatNotFound:
    description: "`chat_not_found`: no such chat, or not one this operator may see (the same answer)"
    content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
  AdminNotFound:
    description: "`not_found`: no such collection, or no such item in it"
    content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
  InvalidBody:
    description: "malformed JSON (`malformed_json`) or a body its model refuses (`invalid_body`)"
    content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
  InvalidQuery:
    description: "`invalid_query`: a query parameter out of range"
    content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
  ChatConflict:
    description: >-
      the chat's state refuses it: `chat_closed`, `chat_taken`, `not_allowed`, `not_offered`, `at_capacity`,
      `operator_unavailable`, or `chat_changed` (another change raced this one; read the chat again)
    content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
  ActionNotAllowed:
    description: "`action_not_allowed`: the chat's queue does not let its operators take this action"
    content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
  NotReady:
    description: "`not_ready`: the router is starting or stopping"
    content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
"""
    ),
)

route: Route = openapi_route(TITLE, version("omni-router"), components=COMPONENTS)
