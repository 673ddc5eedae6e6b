"""`GET /api/files/{file_id}`: an attachment's bytes from GridFS, only to an operator who may see its chat.

Files are customer content: whatever their type, they must never run as a page of the console's origin. Only
raster images a browser cannot script are served inline; everything else is a download, sandboxed and unsniffed.
"""

import re
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from omni_router.auth import operator_of
from omni_router.desk import Desk
from omni_runtime.web import ApiError

CHUNK_BYTES = 255 * 1024
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}
# A media type as a header may carry it: printable ASCII, `type/subtype` and parameters.
_MEDIA_TYPE = re.compile(r"^[\w!#$&^.+-]+/[\w!#$&^.+-]+(?:\s*;[ -~]*)?$", re.ASCII)


def file_routes(desk_of: Callable[[], Desk]) -> list[Route]:
    async def download(request: Request) -> Response:
        desk = desk_of()
        operator = await operator_of(request, desk.db)
        file_id: str = request.path_params["file_id"]
        missing = ApiError(404, "file_not_found", f"no file {file_id}")
        message = await desk.db.messages.find_one({"attachments.file_id": file_id}, {"chat_id": 1, "attachments": 1})
        if message is None:
            raise missing
        try:
            await desk.visible_chat(message["chat_id"], operator)
        except ApiError:
            raise missing from None  # the same answer whether the file exists or is someone else's
        attachment = next(a for a in message["attachments"] if a.get("file_id") == file_id)
        try:
            stream = await AsyncGridFSBucket(desk.db).open_download_stream(ObjectId(file_id))
        except (InvalidId, NoFile):
            raise missing from None

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await stream.readchunk():
                    yield chunk
            finally:
                await stream.close()

        media_type = served_type(attachment.get("content_type"))
        kind = "inline" if media_type.split(";")[0].strip().lower() in INLINE_TYPES else "attachment"
        return StreamingResponse(
            chunks(),
            media_type=media_type,
            headers={
                **FILE_HEADERS,
                "Content-Length": str(stream.length),
                "Content-Disposition": content_disposition(kind, str(attachment.get("file_name") or file_id)),
            },
        )

    return [Route("/api/files/{file_id}", download, methods=["GET"])]


def served_type(content_type: object) -> str:
    """The stored type when it is one a header can carry, else the type that means "bytes"."""
    if isinstance(content_type, str) and _MEDIA_TYPE.match(content_type):
        return content_type
    return "application/octet-stream"


def content_disposition(kind: str, file_name: str) -> str:
    """RFC 6266 as Starlette's FileResponse writes it: `filename*=utf-8''...` for any name that is not plain
    ASCII (which also covers quotes, CR and LF); text that is not Unicode becomes `?`."""
    quoted = quote(file_name, errors="replace")
    if quoted != file_name:
        return f"{kind}; filename*=utf-8''{quoted}"
    return f'{kind}; filename="{file_name}"'
