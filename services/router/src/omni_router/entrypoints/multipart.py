"""One file part of a `multipart/form-data` body, read as it streams in: its bytes are handed on chunk by chunk
(never held whole, in memory or on disk); other parts are skipped unread into anything."""

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from omni_router.domain.errors import Invalid, TooLarge

DEFAULT_TYPE = "application/octet-stream"
MAX_NAME = 255

Happening = tuple[Literal["headers", "data", "end"], bytes, dict[bytes, bytes]]


def _invalid(detail: str) -> Invalid:
    return Invalid("invalid_body", detail)


@dataclass
class FilePart:
    file_name: str
    content_type: str
    _rest: AsyncIterator[Happening]

    async def chunks(self) -> AsyncIterator[bytes]:
        """The part's bytes; a body that ends inside the part is refused (400)."""
        async for kind, data, _ in self._rest:
            if kind == "data":
                yield data
            elif kind == "end":
                return
        raise _invalid("the multipart body ended inside the file")


class _Parser:
    """python-multipart's callbacks as a queue of what happened: a part's headers, data, its end."""

    def __init__(self, boundary: bytes) -> None:
        self.happened: deque[Happening] = deque()
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._data,
                "on_part_end": self._end,
            },
        )

    def _begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        self.happened.append(("headers", b"", self._headers))

    def _data(self, data: bytes, start: int, end: int) -> None:
        self.happened.append(("data", bytes(data[start:end]), {}))

    def _end(self) -> None:
        self.happened.append(("end", b"", {}))


async def _happenings(request: Request, parser: _Parser) -> AsyncIterator[Happening]:
    try:
        async for chunk in request.stream():
            parser.parser.write(chunk)
            while parser.happened:
                yield parser.happened.popleft()
        parser.parser.finalize()
    except FormParserError:
        raise _invalid("the multipart body is malformed") from None
    while parser.happened:
        yield parser.happened.popleft()


def _name(raw: bytes) -> str:
    """The file's own name: browsers send it bare, old ones with a path; no control characters, at most 255."""
    text = raw.decode("utf-8", errors="replace").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if c.isprintable()).strip()
    return text[:MAX_NAME] or "file"


async def file_part(request: Request, field: str, max_body: int) -> FilePart:
    """The part named `field`, its headers read and its bytes still to come. A declared body longer than
    `max_body` is refused before it is read (413)."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise _invalid("send the file as multipart/form-data, in the field `file`")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise TooLarge("file_too_large", f"the body of {declared} bytes is past the limit; nothing was kept")
    happenings = _happenings(request, _Parser(boundary))
    async for happened, _, headers in happenings:
        if happened != "headers":
            continue
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        if disposition.get(b"name", b"").decode("utf-8", "replace") != field or b"filename" not in disposition:
            continue
        content_type = headers.get(b"content-type", b"").decode("latin-1").strip()[:MAX_NAME] or DEFAULT_TYPE
        return FilePart(_name(disposition[b"filename"]), content_type, happenings)
    raise _invalid(f"no file in the multipart field `{field}`")
