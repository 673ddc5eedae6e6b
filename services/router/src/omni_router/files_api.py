"""`GET /api/files/{file_id}`: an attachment's bytes from GridFS, only to an operator who may see its chat."""

from collections.abc import AsyncIterator, Callable

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

        name = (attachment.get("file_name") or file_id).replace('"', "")
        return StreamingResponse(
            chunks(),
            media_type=attachment.get("content_type") or "application/octet-stream",
            headers={"Content-Length": str(stream.length), "Content-Disposition": f'inline; filename="{name}"'},
        )

    return [Route("/api/files/{file_id}", download, methods=["GET"])]
