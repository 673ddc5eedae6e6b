"""`GET /api/files/{file_id}`: an attachment's bytes, only to an operator who may see its chat.

Files are customer content: whatever their type, they must never run as a page of the console's origin. Only raster
images a browser cannot script are served inline; everything else is a download, sandboxed and unsniffed.
"""

import re
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from omni_router.entrypoints.context import services, signed_in

INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}
# A media type as a header may carry it: printable ASCII, `type/subtype` and parameters.
_MEDIA_TYPE = re.compile(r"^[\w!#$&^.+-]+/[\w!#$&^.+-]+(?:\s*;[ -~]*)?$", re.ASCII)


async def download(request: Request) -> Response:
    """An attachment's bytes (inline only for raster images).
    ---
    summary: An attachment's bytes, only to an operator who may see its chat
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
        description: "`file_not_found`: no such file, or one of a chat this operator may not see (the same answer)"
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


def served_type(content_type: object) -> str:
    """The stored type when it is one a header can carry, else the type that means "bytes"."""
    if isinstance(content_type, str) and _MEDIA_TYPE.match(content_type):
        return content_type
    return "application/octet-stream"


def content_disposition(kind: str, file_name: str) -> str:
    """RFC 6266 as Starlette's FileResponse writes it: `filename*=utf-8''...` for any name that is not plain ASCII
    (which also covers quotes, CR and LF); text that is not Unicode becomes `?`."""
    quoted = quote(file_name, errors="replace")
    if quoted != file_name:
        return f"{kind}; filename*=utf-8''{quoted}"
    return f'{kind}; filename="{file_name}"'


routes = [Route("/api/files/{file_id}", download, methods=["GET"])]
