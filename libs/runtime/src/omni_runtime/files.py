"""Files in MongoDB GridFS, stored and served one way: customers' attachments and operators' uploads alike.

Every file lives in the default bucket (`fs`), its name in GridFS's `filename` and its media type in
`metadata.content_type`; our `file_id` is the GridFS id as text. Files are customer content: whoever serves
them uses `file_headers`, so no file ever runs as a page of our origin.
"""

import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from gridfs.asynchronous.grid_file import AsyncGridIn, AsyncGridOut
from gridfs.errors import NoFile
from pymongo.errors import PyMongoError

from omni_runtime.database import Database

log = logging.getLogger(__name__)

# The default bucket, so whatever serves files opens it without configuration.
BUCKET = "fs"
# Raster images a browser shows without running anything: the only types ever served inline.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# Never sniffed into something active, and sandboxed should a browser open one as a page.
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}
# A media type as a header may carry it: printable ASCII, `type/subtype` and parameters.
_MEDIA_TYPE = re.compile(r"^[\w!#$&^.+-]+/[\w!#$&^.+-]+(?:\s*;[ -~]*)?$", re.ASCII)

Write = Callable[[bytes], Awaitable[None]]
Copy = Callable[[Write], Awaitable[int]]


# PyMongo's GridIn batches its chunk inserts up to its largest message (48 MB): a whole attachment in memory before
# any of it reaches the database. Flushed at this size instead, a file being stored holds at most this much.
FLUSH_BYTES = 4 * 1024 * 1024


class _BoundedGridIn(AsyncGridIn):
    """GridFS's upload stream, inserting its chunks once FLUSH_BYTES of them wait (the order and the file are the
    same; only the batches are smaller)."""

    async def _flush_data(self, data: Any, force: bool = False) -> None:
        waiting = self._buffered_docs_size + len(data)
        await super()._flush_data(data, force=force or waiting >= FLUSH_BYTES)


class FileTooLarge(Exception):
    """The bytes went past the limit they were stored under; nothing of them is kept."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the file is larger than the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


@dataclass(frozen=True)
class StoredFile:
    """A complete file: GridFS writes the files document only once every chunk is in."""

    file_id: str
    file_name: str
    content_type: str | None
    size: int
    metadata: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, grid_out: AsyncGridOut) -> "StoredFile":
        metadata = dict(grid_out.metadata or {})
        content_type = metadata.get("content_type")
        return cls(
            file_id=str(grid_out._id),
            file_name=str(grid_out.filename or grid_out._id),
            content_type=content_type if isinstance(content_type, str) else None,
            size=int(grid_out.length),
            metadata=metadata,
        )


@dataclass
class FileStream:
    """An open file: what it is, and its bytes chunk by chunk (the stream closes when they are read)."""

    file: StoredFile
    _grid_out: AsyncGridOut = field(repr=False)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while chunk := await self._grid_out.readchunk():
                yield chunk
        finally:
            await self._grid_out.close()

    async def close(self) -> None:
        await self._grid_out.close()


class FileStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)

    async def save(
        self, file_name: str, content_type: str | None, copy: Copy, metadata: Mapping[str, Any] | None = None
    ) -> StoredFile:
        """Upload what `copy` writes; on any failure the partial file is deleted and the error raised."""
        described = {**(metadata or {}), "content_type": content_type}
        upload = _BoundedGridIn(self._db[BUCKET], filename=file_name, metadata=described)
        try:
            size = await copy(upload.write)
            await upload.close()
        except BaseException:
            await _discard(upload)
            raise
        return StoredFile(str(upload._id), file_name, content_type, size, described)

    async def put(
        self,
        file_name: str,
        content_type: str | None,
        chunks: AsyncIterable[bytes],
        max_bytes: int,
        metadata: Mapping[str, Any] | None = None,
    ) -> StoredFile:
        """Store `chunks` as one file; past `max_bytes` it stops, keeps nothing and raises FileTooLarge."""

        async def copy(write: Write) -> int:
            size = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise FileTooLarge(max_bytes)
                await write(chunk)
            return size

        return await self.save(file_name, content_type, copy, metadata)

    async def find_one(self, query: Mapping[str, Any]) -> StoredFile | None:
        """The first complete file whose files document matches `query` (e.g. `{"metadata.message_id": ...}`)."""
        async for grid_out in self._bucket.find(dict(query), limit=1):
            return StoredFile.of(grid_out)
        return None

    async def describe(self, file_id: str) -> StoredFile | None:
        """The file `file_id` names, or None when there is none (or `file_id` is no GridFS id at all)."""
        object_id = _object_id(file_id)
        return None if object_id is None else await self.find_one({"_id": object_id})

    async def open(self, file_id: str) -> FileStream | None:
        object_id = _object_id(file_id)
        if object_id is None:
            return None
        try:
            grid_out = await self._bucket.open_download_stream(object_id)
        except NoFile:
            return None
        return FileStream(StoredFile.of(grid_out), grid_out)

    async def read(self, file_id: str) -> tuple[StoredFile, bytes] | None:
        """The whole file in memory: for what must hand the bytes on at once (a multipart upload)."""
        stream = await self.open(file_id)
        if stream is None:
            return None
        parts = [chunk async for chunk in stream.chunks()]
        return stream.file, b"".join(parts)


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


def file_headers(file: StoredFile) -> dict[str, str]:
    """What a file is served with: its type, length and name; inline only for raster images, else a download."""
    media_type = served_type(file.content_type)
    kind = "inline" if media_type.split(";")[0].strip().lower() in INLINE_TYPES else "attachment"
    return {
        **FILE_HEADERS,
        "Content-Type": media_type,
        "Content-Length": str(file.size),
        "Content-Disposition": content_disposition(kind, file.file_name),
    }


def _object_id(file_id: str) -> ObjectId | None:
    try:
        return ObjectId(file_id)
    except (InvalidId, TypeError):
        return None


async def _discard(upload: AsyncGridIn) -> None:
    """Delete the chunks of an unfinished upload."""
    try:
        await upload.abort()
    except PyMongoError as exc:
        # Left-over chunks are garbage, not data; the cause of the abort matters more than the clean-up.
        # (nx-27017, the test stand-in, also answers the delete of a files document never written with an error.)
        log.debug("partial file not fully cleaned up", extra={"cause": str(exc)})
