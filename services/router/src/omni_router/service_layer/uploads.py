"""Operators' files (`POST /api/files`): stored in GridFS as they stream in, size-limited, then sent by a reply
that names them (`attachments: [{"file_id"}]`).

Who may use a file: the operator who uploaded it, and whoever may see a chat it was sent in (the same fence as
chats). To anyone else a file does not exist: 404 when fetched, 422 `file_not_found` when attached.
"""

from collections.abc import AsyncIterable, Sequence

from omni_router.domain.errors import NotFound, Unprocessable
from omni_router.domain.model import FileRef, Operator, Upload
from omni_router.service_layer.desk import Desk
from omni_router.service_layer.ports import Files, Messages


class Uploads:
    def __init__(self, *, files: Files, messages: Messages, desk: Desk, max_bytes: int) -> None:
        self._files = files
        self._messages = messages
        self._desk = desk
        self.max_bytes = max_bytes

    async def upload(
        self, operator: Operator, file_name: str, content_type: str | None, chunks: AsyncIterable[bytes]
    ) -> Upload:
        """Store the bytes as they come; past the limit nothing is kept (TooLarge)."""
        return await self._files.put(file_name, content_type, chunks, self.max_bytes, operator.id)

    async def usable(self, file_id: str, operator: Operator) -> Upload | None:
        """The file, if this operator uploaded it or may see a chat it was sent in; else None."""
        upload = await self._files.describe(file_id)
        if upload is None:
            return None
        if upload.uploaded_by == operator.id:
            return upload
        message = await self._messages.with_file(file_id)
        if message is None:
            return None
        try:
            await self._desk.visible_chat(message.chat_id, operator)
        except NotFound:
            return None
        return upload

    async def attachments(self, file_ids: Sequence[str], operator: Operator) -> list[FileRef]:
        """The files a reply names, as it stores them; 422 `file_not_found` for one this operator may not use."""
        found: list[FileRef] = []
        for file_id in file_ids:
            upload = await self.usable(file_id, operator)
            if upload is None:
                raise Unprocessable(
                    "file_not_found", f"no file {file_id} of yours: upload it with POST /api/files first"
                )
            found.append(upload.as_attachment())
        return found
