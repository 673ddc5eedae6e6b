"""Attachment files in GridFS, one per (message id, attachment index), found again by that key."""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gridfs import AsyncGridFSBucket
from gridfs.asynchronous.grid_file import AsyncGridIn
from gridfs.errors import FileExists
from pymongo import ASCENDING
from pymongo.errors import PyMongoError

from omni_runtime.database import Database
from omni_runtime.errors import RetryLater

log = logging.getLogger(__name__)

# The default bucket, so whatever serves files (GET /api/files/{file_id}) opens it without configuration.
BUCKET = "fs"

Write = Callable[[bytes], Awaitable[None]]
Copy = Callable[[Write], Awaitable[int]]


@dataclass(frozen=True)
class FileKey:
    message_id: str
    index: int

    def query(self) -> dict[str, Any]:
        return {"metadata.message_id": self.message_id, "metadata.index": self.index}


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    size: int
    content_type: str | None


class AttachmentFiles:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)

    async def ensure_index(self) -> None:
        """One complete file per key: a racing second upload fails on close instead of adding a twin.

        Sparse, so files other services put in the bucket without these fields are not affected.
        """
        await self._db[f"{BUCKET}.files"].create_index(
            [("metadata.message_id", ASCENDING), ("metadata.index", ASCENDING)],
            unique=True,
            sparse=True,
            name="attachment_key",
        )

    async def find(self, key: FileKey) -> StoredFile | None:
        """The complete file of `key`: GridFS writes the files document only once every chunk is in."""
        async for grid_out in self._bucket.find(key.query(), limit=1):
            metadata = grid_out.metadata or {}
            return StoredFile(str(grid_out._id), int(grid_out.length), metadata.get("content_type"))
        return None

    async def save(
        self, key: FileKey, chat_id: str, file_name: str, content_type: str | None, copy: Copy
    ) -> StoredFile:
        """Upload what `copy` writes; on any failure the partial file is deleted and the error raised."""
        metadata = {
            "message_id": key.message_id,
            "chat_id": chat_id,
            "index": key.index,
            "content_type": content_type,
        }
        upload = self._bucket.open_upload_stream(file_name, metadata=metadata)
        try:
            size = await copy(upload.write)
            await upload.close()
        except FileExists:
            # Another consumer stored the same attachment first (a redelivery raced us): keep theirs.
            await _discard(upload)
            winner = await self.find(key)
            if winner is None:
                raise RetryLater("a concurrent upload of this attachment vanished") from None
            return winner
        except BaseException:
            await _discard(upload)
            raise
        return StoredFile(str(upload._id), size, content_type)


async def _discard(upload: AsyncGridIn) -> None:
    """Delete the chunks of an unfinished upload."""
    try:
        await upload.abort()
    except PyMongoError as exc:
        # Left-over chunks are garbage, not data; the cause of the abort matters more than the clean-up.
        # (nx-27017, the test stand-in, also answers the delete of a files document never written with an error.)
        log.debug("partial attachment not fully cleaned up", extra={"cause": str(exc)})
