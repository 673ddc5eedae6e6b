"""Attachment files in GridFS (omni_runtime.files), one per (message id, attachment index), found again by that key."""

from dataclasses import dataclass
from typing import Any

from gridfs.errors import FileExists
from pymongo import ASCENDING

from omni_runtime.database import Database
from omni_runtime.errors import RetryLater
from omni_runtime.files import BUCKET, Copy, FileStore, StoredFile


@dataclass(frozen=True)
class FileKey:
    message_id: str
    index: int

    def query(self) -> dict[str, Any]:
        return {"metadata.message_id": self.message_id, "metadata.index": self.index}


class AttachmentFiles:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._store = FileStore(db)

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
        return await self._store.find_one(key.query())

    async def save(
        self, key: FileKey, chat_id: str, file_name: str, content_type: str | None, copy: Copy
    ) -> StoredFile:
        """Upload what `copy` writes; on any failure the partial file is deleted and the error raised."""
        metadata = {"message_id": key.message_id, "chat_id": chat_id, "index": key.index}
        try:
            return await self._store.save(file_name, content_type, copy, metadata)
        except FileExists:
            # Another consumer stored the same attachment first (a redelivery raced us): keep theirs.
            winner = await self.find(key)
            if winner is None:
                raise RetryLater("a concurrent upload of this attachment vanished") from None
            return winner
