"""`omni tail`: an operator's live notifications from the router's `GET /api/events` (Server-Sent Events)."""

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import httpx

from omni_cli.client import failure_of, unreachable

# The router pings every 15 s: a stream silent for this long is dead.
READ_TIMEOUT_SECONDS = 60.0
RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class SseEvent:
    """One dispatched message: the stream's last event id so far, its type, its data (None: an id-only message)."""

    id: str | None
    event: str
    data: str | None


class SseParser:
    """Messages from an event stream's lines, one line at a time, by the WHATWG rules: fields up to a blank line,
    `:` comments, and an `id` that stays the stream's last event id until another one comes."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self._event, self._data, self._has_id = "", list[str](), False

    def feed(self, line: str) -> SseEvent | None:
        if line == "":
            return self._dispatch()
        if not line.startswith(":"):  # a comment otherwise
            name, _, value = line.partition(":")
            self._field(name, value)
        return None

    def _dispatch(self) -> SseEvent | None:
        """A blank line: the message gathered so far, if it has data or an id; then a fresh one begins."""
        message = None
        if self._data or self._has_id:
            data = "\n".join(self._data) if self._data else None
            message = SseEvent(self.last_id, self._event or "message", data)
        self._event, self._data, self._has_id = "", [], False
        return message

    def _field(self, name: str, value: str) -> None:
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id, self._has_id = value, True


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    parser = SseParser()
    for line in lines:
        message = parser.feed(line)
        if message is not None:
            yield message


def tail(
    url: str,
    token: str,
    write: Callable[[str], None],
    notice: Callable[[str], None],
    last_event_id: str | None = None,
) -> None:
    """Write each notification's JSON until interrupted; reconnect from the last event id when the stream drops.

    Raises ApiFailure when the router refuses the token, or cannot be reached the first time.
    """
    follower = _Follower(url, token, write, notice, last_event_id)
    while True:
        try:
            follower.follow()
        except httpx.TransportError as exc:
            if not follower.connected_once:
                raise unreachable(url, exc) from None
            notice(f"connection lost ({exc or type(exc).__name__}); reconnecting")
        time.sleep(RETRY_SECONDS)


@dataclass
class _Follower:
    url: str
    token: str
    write: Callable[[str], None]
    notice: Callable[[str], None]
    last_event_id: str | None
    connected_once: bool = False

    def follow(self) -> None:
        """One connection, until the stream ends; a refusal (4xx) raises ApiFailure, a 5xx is retried."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_SECONDS)
        with httpx.stream("GET", f"{self.url.rstrip('/')}/api/events", headers=headers, timeout=timeout) as answer:
            if answer.is_error:
                answer.read()
                if answer.status_code < 500:
                    raise failure_of(answer)
                self.notice(f"the router answered {answer.status_code}; retrying")
                return
            self.notice("connected" if not self.connected_once else f"reconnected after {self.last_event_id}")
            self.connected_once = True
            for message in parse_sse(answer.iter_lines()):
                self.last_event_id = message.id or self.last_event_id
                if message.data is not None:
                    self.write(message.data)
            self.notice("the stream ended; reconnecting")
