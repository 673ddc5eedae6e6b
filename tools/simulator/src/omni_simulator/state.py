"""What the simulator remembers: the requests it received, the faults armed, the secrets and the files it serves."""

import hashlib
import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal


@dataclass
class ReceivedFile:
    """A file a messenger got with a send: uploaded in the request (Telegram) or fetched from the URL it named.

    `status` is the fetch's HTTP status (None for an upload, or when the fetch failed before an answer, with
    `error`); `headers` are the answer's headers, lower-cased. `content` is kept here; the control API serves it.
    """

    source: Literal["upload", "fetch"]
    content: bytes = field(repr=False)
    part: str | None = None  # the multipart field of an upload
    url: str | None = None
    file_name: str | None = None
    content_type: str | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and (self.status is None or 200 <= self.status < 300)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "part": self.part,
            "url": self.url,
            "file_name": self.file_name,
            "content_type": self.content_type,
            "status": self.status,
            "headers": self.headers,
            "error": self.error,
            "size": len(self.content),
            "sha256": hashlib.sha256(self.content).hexdigest(),
        }


@dataclass
class RecordedRequest:
    """One request to a simulated messenger path, with the status the simulator answered."""

    method: str
    path: str
    provider: str | None
    headers: dict[str, str]
    # The body exactly as received (signatures are checked over it), and parsed as JSON when it is JSON.
    raw: str
    body: Any
    message_id: str | None
    received_at: datetime
    status: int
    signature_valid: bool | None = None
    answer_message_id: str | None = None
    fault_id: str | None = None
    # A repeat of an Idempotency-Key answered 2xx before: answered the same, not delivered again.
    replayed: bool = False
    # Files the send carried (uploads) or named (fetched from their URLs, as the messenger would).
    files: list[ReceivedFile] = field(default_factory=list)
    # Assigned by SimulatorState.record, in arrival order.
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "provider": self.provider,
            "headers": self.headers,
            "raw": self.raw,
            "body": self.body,
            "message_id": self.message_id,
            "received_at": self.received_at.isoformat(),
            "status": self.status,
            "signature_valid": self.signature_valid,
            "answer_message_id": self.answer_message_id,
            "fault_id": self.fault_id,
            "replayed": self.replayed,
            "files": [f.to_json() for f in self.files],
        }


@dataclass
class Fault:
    """An armed failure: requests whose path starts with `path_prefix` get `status` while `remaining` lasts.

    `remaining` None means until cleared; `status` None means "answer normally", for a delay-only fault.
    """

    id: str
    path_prefix: str
    status: int | None
    count: int | None
    retry_after: float | None = None
    delay: float | None = None
    body: str | None = None
    content_type: str | None = None
    remaining: int | None = field(init=False)
    applied: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.remaining = self.count

    def matches(self, path: str) -> bool:
        return path.startswith(self.path_prefix) and (self.remaining is None or self.remaining > 0)

    def take(self) -> None:
        self.applied += 1
        if self.remaining is not None:
            self.remaining -= 1

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path_prefix": self.path_prefix,
            "status": self.status,
            "count": self.count,
            "remaining": self.remaining,
            "applied": self.applied,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "body": self.body,
            "content_type": self.content_type,
        }


@dataclass(frozen=True)
class StoredFile:
    content: bytes
    content_type: str


class SimulatorState:
    """Plain in-memory state; the app runs on one event loop, so no locking is needed."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.secrets: dict[str, str] = {}
        self.files: dict[str, StoredFile] = {}
        # Each messenger module keeps its own state here under its name (e.g. Telegram's pending updates).
        self.extras: dict[str, Any] = {}
        # (path, Idempotency-Key) -> the answer id of the delivery it made, as messengers keep keys.
        self.idempotency: dict[tuple[str, str], str] = {}
        self._request_seq = itertools.count(1)
        self._fault_seq = itertools.count(1)
        self._answer_seq = itertools.count(1)

    def arm(
        self,
        path_prefix: str,
        status: int | None,
        count: int | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
        body: str | None = None,
        content_type: str | None = None,
    ) -> Fault:
        fault = Fault(
            f"fault-{next(self._fault_seq)}", path_prefix, status, count, retry_after, delay, body, content_type
        )
        self.faults.append(fault)
        return fault

    def take_fault(self, path: str) -> Fault | None:
        """The first armed fault matching `path`, its count decremented; None when the request should succeed."""
        for fault in self.faults:
            if fault.matches(path):
                fault.take()
                return fault
        return None

    def clear_faults(self) -> int:
        cleared = len(self.faults)
        self.faults.clear()
        return cleared

    def record(self, recorded: RecordedRequest) -> RecordedRequest:
        recorded.seq = next(self._request_seq)
        self.requests.append(recorded)
        return recorded

    def by_seq(self, seq: int) -> RecordedRequest | None:
        return next((r for r in self.requests if r.seq == seq), None)

    def select(self, path_prefix: str | None = None, provider: str | None = None) -> list[RecordedRequest]:
        """Recorded requests in arrival order, optionally narrowed by path prefix and provider."""
        return [
            r
            for r in self.requests
            if (path_prefix is None or r.path.startswith(path_prefix)) and (provider is None or r.provider == provider)
        ]

    def clear_requests(self) -> int:
        cleared = len(self.requests)
        self.requests.clear()
        return cleared

    def deliveries(self, provider: str | None = None) -> Counter[str]:
        """How many times each body `message_id` was delivered (answered 2xx on an outgoing path, less the repeats
        recognised by their Idempotency-Key): exactly-once is a count of 1."""
        return Counter(
            r.message_id
            for r in self.select("/thirdparty/", provider)
            if r.message_id is not None and 200 <= r.status < 300 and not r.replayed
        )

    def replays(self, provider: str | None = None) -> Counter[str]:
        """Repeats recognised by their Idempotency-Key, per body `message_id`."""
        return Counter(r.message_id for r in self.select("/thirdparty/", provider) if r.replayed and r.message_id)

    def next_answer_id(self) -> str:
        return f"sim-{next(self._answer_seq)}"

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.secrets.clear()
        self.files.clear()
        self.extras.clear()
        self.idempotency.clear()
