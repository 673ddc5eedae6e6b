"""Files as messengers get them with a send: multipart uploads read from the request, URLs fetched like the real
messenger fetches them (Graph, WhatsApp, Twilio and third-party providers all GET the URL they were given)."""

from collections.abc import Iterable

import httpx
from starlette.datastructures import UploadFile

from omni_simulator.state import ReceivedFile

FETCH_TIMEOUT_SECONDS = 5.0
# Meta takes attachments of up to 25 MB, Twilio 5 MB a message, WhatsApp documents 100 MB: more is refused.
MAX_FETCH_BYTES = 100 * 1024 * 1024


async def read_upload(field: str, upload: UploadFile) -> ReceivedFile:
    content = await upload.read()
    return ReceivedFile(
        source="upload",
        content=content,
        part=field,
        file_name=upload.filename,
        content_type=upload.content_type,
    )


async def fetch_all(http: httpx.AsyncClient, urls: Iterable[str]) -> list[ReceivedFile]:
    return [await fetch(http, url) for url in urls]


async def fetch(http: httpx.AsyncClient, url: str) -> ReceivedFile:
    """GET `url` as a messenger's media fetcher would (redirects followed), keeping status, headers and bytes."""
    try:
        async with http.stream("GET", url, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=True) as response:
            content = b""
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) > MAX_FETCH_BYTES:
                    return ReceivedFile("fetch", b"", url=url, status=response.status_code, error="file too large")
            headers = {k.lower(): v for k, v in response.headers.items()}
            return ReceivedFile(
                "fetch",
                content,
                url=url,
                status=response.status_code,
                headers=headers,
                content_type=headers.get("content-type"),
            )
    except (httpx.HTTPError, ValueError) as exc:
        return ReceivedFile("fetch", b"", url=url, error=f"{type(exc).__name__}: {exc}")
