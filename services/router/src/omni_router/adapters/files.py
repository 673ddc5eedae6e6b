"""Attachments' bytes in MongoDB GridFS, as the attachments service stored them."""

from collections.abc import AsyncIterator

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from gridfs.asynchronous.grid_file import AsyncGridOut
from gridfs.errors import NoFile

from omni_router.adapters.documents import Database


class GridFSDownload:
    def __init__(self, stream: AsyncGridOut) -> None:
        self._stream = stream
        self.length = int(stream.length)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while chunk := await self._stream.readchunk():
                yield chunk
        finally:
            await self._stream.close()


class GridFSFiles:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def open(self, file_id: str) -> GridFSDownload | None:
        try:
            return GridFSDownload(await AsyncGridFSBucket(self._db).open_download_stream(ObjectId(file_id)))
        except (InvalidId, NoFile):
            return None
