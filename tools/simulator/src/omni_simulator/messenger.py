"""The messenger side: the third-party outgoing endpoint and attachment downloads, both subject to armed faults."""

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from omni_providers.signatures import OMNI_SIGNATURE_HEADER, verify_hmac_sha256
from omni_providers.thirdparty import IDEMPOTENCY_KEY_HEADER
from omni_runtime.web import error_response
from omni_simulator.state import Fault, RecordedRequest, SimulatorState

log = logging.getLogger(__name__)


def messenger_routes(state: SimulatorState) -> list[BaseRoute]:
    async def outgoing(request: Request) -> Response:
        provider: str = request.path_params["provider"]
        raw = await request.body()
        fault = state.take_fault(request.url.path)
        status = _status(fault, 200)
        answer_id, replayed = None, False
        if fault is None or fault.status is None:
            # A key delivered before is answered as then and not delivered again; a failed attempt keeps no key.
            key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
            earlier = state.idempotency.get((request.url.path, key)) if key else None
            answer_id, replayed = earlier or state.next_answer_id(), earlier is not None
            if key:
                state.idempotency[(request.url.path, key)] = answer_id
        secret = state.secrets.get(provider)
        signature = request.headers.get(OMNI_SIGNATURE_HEADER)
        _record(
            state,
            request,
            fault,
            status,
            provider=provider,
            raw=raw,
            payload=_json_or_none(raw),
            signature_valid=None if secret is None else verify_hmac_sha256(secret, raw, signature),
            answer_id=answer_id,
            replayed=replayed,
        )
        faulted = await _apply(request, fault)
        return faulted if faulted is not None else JSONResponse({"message_id": answer_id})

    async def download(request: Request) -> Response:
        name: str = request.path_params["name"]
        fault = state.take_fault(request.url.path)
        stored = state.files.get(name)
        _record(state, request, fault, _status(fault, 200 if stored is not None else 404))
        faulted = await _apply(request, fault)
        if faulted is not None:
            return faulted
        if stored is None:
            return error_response(404, "not_found", f"no file named {name}")
        return Response(stored.content, media_type=stored.content_type)

    return [
        Route("/thirdparty/{provider}/outgoing", outgoing, methods=["POST"]),
        Route("/files/{name:path}", download, methods=["GET"]),
    ]


def _record(
    state: SimulatorState,
    request: Request,
    fault: Fault | None,
    status: int,
    provider: str | None = None,
    raw: bytes = b"",
    payload: Any = None,
    signature_valid: bool | None = None,
    answer_id: str | None = None,
    replayed: bool = False,
) -> None:
    # Recorded on arrival, before any delay, so a test that timed out still sees its attempt counted.
    state.record(
        RecordedRequest(
            method=request.method,
            path=request.url.path,
            provider=provider,
            headers=dict(request.headers),
            raw=raw.decode(errors="replace"),
            body=payload,
            message_id=_message_id(payload),
            received_at=datetime.now(UTC),
            status=status,
            signature_valid=signature_valid,
            answer_message_id=answer_id,
            fault_id=fault.id if fault is not None else None,
            replayed=replayed,
        )
    )
    log.info("recorded", extra={"path": request.url.path, "status": status})


def _status(fault: Fault | None, normal: int) -> int:
    return fault.status if fault is not None and fault.status is not None else normal


async def _apply(request: Request, fault: Fault | None) -> Response | None:
    """Wait out the fault's delay, then its answer; None when the request should be answered normally."""
    if fault is None:
        return None
    if fault.delay:
        await _hold(request, fault.delay)
    if fault.status is None:
        return None
    headers = {"Retry-After": _seconds(fault.retry_after)} if fault.retry_after is not None else None
    if fault.body is None:
        return JSONResponse(
            {"error": "simulated_fault", "detail": f"{fault.id} answers {fault.status}"},
            status_code=fault.status,
            headers=headers,
        )
    return Response(fault.body, fault.status, headers, media_type=fault.content_type or "text/plain")


async def _hold(request: Request, seconds: float) -> None:
    """Sleep before answering, cut short when the client hangs up (it timed out), so a shutdown never waits on it."""
    sleeper = asyncio.ensure_future(asyncio.sleep(seconds))
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({sleeper, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        watcher.cancel()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _seconds(value: float) -> str:
    # Whole seconds as HTTP writes them ("7", not "7.0"); fractions kept for fast retry tests.
    return str(int(value)) if value == int(value) else str(value)


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _message_id(payload: Any) -> str | None:
    value = payload.get("message_id") if isinstance(payload, dict) else None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
