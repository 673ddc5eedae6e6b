"""Files in MongoDB GridFS, through `omni_runtime.files.FileStore`: customers' attachments as the attachments service
stored them, and operators' uploads (`metadata.uploaded_by`)."""

from collections.abc import AsyncIterable, AsyncIterator

from omni_router.adapters.documents import Database
from omni_router.domain.errors import TooLarge
from omni_router.domain.model import Upload
from omni_runtime.files import FileStore, FileStream, FileTooLarge, StoredFile


class GridFSDownload:
    def __init__(self, stream: FileStream) -> None:
        self._stream = stream
        self.length = stream.file.size

    def chunks(self) -> AsyncIterator[bytes]:
        return self._stream.chunks()


def _upload(stored: StoredFile) -> Upload:
    uploaded_by = stored.metadata.get("uploaded_by")
    return Upload(
        file_id=stored.file_id,
        file_name=stored.file_name,
        content_type=stored.content_type,
        size=stored.size,
        uploaded_by=uploaded_by if isinstance(uploaded_by, str) else None,
    )


class GridFSFiles:
    def __init__(self, db: Database) -> None:
        self._store = FileStore(db)

    async def open(self, file_id: str) -> GridFSDownload | None:
        stream = await self._store.open(file_id)
        return GridFSDownload(stream) if stream is not None else None

    async def describe(self, file_id: str) -> Upload | None:
        stored = await self._store.describe(file_id)
        return _upload(stored) if stored is not None else None

    async def put(
        self, file_name: str, content_type: str | None, chunks: AsyncIterable[bytes], max_bytes: int, uploaded_by: str
    ) -> Upload:
        try:
            stored = await self._store.put(file_name, content_type, chunks, max_bytes, {"uploaded_by": uploaded_by})
        except FileTooLarge as error:
            raise TooLarge("file_too_large", f"{error}; nothing was kept") from None
        return _upload(stored)
