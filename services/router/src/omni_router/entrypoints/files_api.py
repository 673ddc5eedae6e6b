"""Files: `POST /api/files` (an operator's upload, streamed into GridFS) and `GET /api/files/{file_id}` (a file's
bytes, only to an operator who may see a chat it is in, or who uploaded it).

Files are customer content: whatever their type, they must never run as a page of the console's origin. Only raster
images a browser cannot script are served inline; everything else is a download, sandboxed and unsniffed.
"""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from omni_router.entrypoints.context import services, signed_in
from omni_router.entrypoints.multipart import file_part
from omni_runtime.files import FILE_HEADERS, INLINE_TYPES, content_disposition, served_type

__all__ = ["content_disposition", "download", "routes", "upload"]

# Room for the multipart framing around the file: a body longer than the limit and this is refused unread.
FRAMING_BYTES = 64 * 1024


async def upload(request: Request) -> Response:
    """Upload a file to send in a reply (multipart, field `file`), streamed into storage.
    ---
    summary: Upload a file to attach to a reply
    description: >-
      The multipart field `file` is stored as it streams in; its name and type are the part's. Past
      `ATTACHMENT_MAX_BYTES` the upload stops and nothing is kept (413). Then `POST /api/chats/{chat_id}/messages`
      with `attachments: [{"file_id"}]` sends it. Only this operator (and, once sent, whoever may see the chat) may
      fetch or attach it.
    tags: [files]
    security: [{operatorToken: []}]
    requestBody:
      required: true
      content:
        multipart/form-data:
          schema:
            type: object
            required: [file]
            properties:
              file: {type: string, format: binary}
    responses:
      "201":
        description: stored
        content:
          application/json:
            schema:
              type: object
              required: [file_id, file_name, content_type, size]
              properties:
                file_id: {type: string}
                file_name: {type: string}
                content_type: {type: string}
                size: {type: integer}
      "400":
        description: "`invalid_body`: not multipart/form-data, malformed, or without a `file` part"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "413":
        description: "`file_too_large`: past ATTACHMENT_MAX_BYTES; nothing was kept"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    uploads = services(request).uploads
    operator = await signed_in(request)
    part = await file_part(request, "file", uploads.max_bytes + FRAMING_BYTES)
    stored = await uploads.upload(operator, part.file_name, part.content_type, part.chunks())
    return JSONResponse(
        {
            "file_id": stored.file_id,
            "file_name": stored.file_name,
            "content_type": stored.content_type,
            "size": stored.size,
        },
        status_code=201,
    )


async def download(request: Request) -> Response:
    """An attachment's bytes (inline only for raster images).
    ---
    summary: A file's bytes, only to an operator who may see a chat it is in, or who uploaded it
    description: >-
      PNG, JPEG, GIF and WebP are served inline, every other type as `Content-Disposition: attachment` (names that
      are not plain ASCII as RFC 6266 `filename*`); always `X-Content-Type-Options: nosniff` and
      `Content-Security-Policy: default-src 'none'; sandbox`. A stored type that is not a valid media type is
      served as `application/octet-stream`.
    tags: [files]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: the file
        headers:
          Content-Disposition: {schema: {type: string}}
          Content-Length: {schema: {type: integer}}
        content: {"*/*": {schema: {type: string, format: binary}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404":
        description: >-
          `file_not_found`: no such file, or one of a chat this operator may not see and did not upload (the
          same answer)
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    desk = services(request).desk
    operator = await signed_in(request)
    file_id: str = request.path_params["file_id"]
    attachment, stream = await desk.file(file_id, operator)
    media_type = served_type(attachment.content_type)
    kind = "inline" if media_type.split(";")[0].strip().lower() in INLINE_TYPES else "attachment"
    return StreamingResponse(
        stream.chunks(),
        media_type=media_type,
        headers={
            **FILE_HEADERS,
            "Content-Length": str(stream.length),
            "Content-Disposition": content_disposition(kind, str(attachment.file_name or file_id)),
        },
    )


routes = [
    Route("/api/files", upload, methods=["POST"]),
    Route("/api/files/{file_id}", download, methods=["GET"]),
]
