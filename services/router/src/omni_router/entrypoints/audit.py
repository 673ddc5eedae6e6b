"""The audit trail: every write to the admin API (POST, PUT, PATCH, DELETE under /api/admin) and to the
supervisors' (PATCH /api/supervisor/queues/{id}), refused ones included, is recorded with its caller, method, path,
target and the status it was answered with, before the answer leaves. Never a body, a query or a token: the target
of a creation is the `id` its answer names."""

import json
import logging
from typing import Any, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omni_router.domain.tokens import Principal
from omni_router.entrypoints.context import ACTOR, Services
from omni_runtime.service import Slot

log = logging.getLogger(__name__)

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PREFIX = "/api/admin"
SUPERVISOR_PREFIX = "/api/supervisor"
# Path parameters that name a collection, not an item.
NOT_TARGETS = frozenset({"kind"})


def audited(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    return scope["method"] in WRITES and any(path == p or path.startswith(p + "/") for p in (PREFIX, SUPERVISOR_PREFIX))


def target_of(scope: Scope, status: int, body: bytes) -> str | None:
    """The item a write was about: a creation's new `id`, else the path's last item parameter."""
    if status == 201 and body:
        try:
            created = json.loads(body)
        except ValueError:
            created = None
        if isinstance(created, dict) and isinstance(created.get("id"), str):
            return cast(str, created["id"])
    params = [str(v) for k, v in (scope.get("path_params") or {}).items() if k not in NOT_TARGETS]
    return params[-1] if params else None


class AuditTrail:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not audited(scope):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        held: list[Message] = []
        recorded = False

        async def send_after_recording(message: Message) -> None:
            nonlocal recorded
            if recorded:
                await send(message)
                return
            held.append(message)
            start = held[0]
            if message["type"] == "http.response.body" and start["status"] == 201 and message.get("more_body"):
                return  # a creation: its id is in the body, recorded once the body is complete
            if message["type"] == "http.response.start" and start["status"] == 201:
                return
            body = b"".join(m.get("body", b"") for m in held[1:])
            recorded = True
            await self._record(scope, start["status"], body)
            for pending in held:
                await send(pending)

        try:
            await self.app(scope, receive, send_after_recording)
        except Exception:
            if not recorded:
                recorded = True
                await self._record(scope, 500, b"")
            raise

    async def _record(self, scope: Scope, status: int, body: bytes) -> None:
        slot = cast(Slot[Services], scope["app"].state.service)
        running = slot.peek()
        if running is None:
            return  # starting or stopping: the write was refused (503) before anything was done
        actor: Any = scope["state"].get(ACTOR)
        try:
            await running.audit.record(
                actor if isinstance(actor, Principal) else None,
                scope["method"],
                scope["path"],
                target_of(scope, status, body),
                status,
            )
        except Exception:
            # The write is done (or refused) either way; failing its answer now would not undo it.
            log.exception("an admin write could not be recorded in the audit log", extra={"path": scope["path"]})
