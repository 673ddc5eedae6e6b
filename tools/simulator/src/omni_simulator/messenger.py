"""The messenger side: the third-party outgoing endpoint, attachment downloads and outbound-webhook receivers, all
subject to armed faults.

A third-party provider fetches the attachment URLs of a reply it takes (the bytes are recorded with it). A
receiver (`POST /receivers/{name}`) takes our outbound webhooks as a CRM would: it checks X-Omni-Signature with
the secret set at `PUT /_sim/receivers/{name}`, and a repeat of an Idempotency-Key it took is answered the same
and not counted again; faults armed for `/receivers/{name}` make it fail (500, or a delay past the sender's
timeout) for as many attempts as their count.
"""

import asyncio
import json
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from omni_providers.signatures import OMNI_SIGNATURE_HEADER, verify_hmac_sha256
from omni_providers.thirdparty import IDEMPOTENCY_KEY_HEADER
from omni_runtime.service import Slot
from omni_runtime.web import error_response, parse_body, read_json
from omni_simulator.media import fetch_all
from omni_simulator.state import Fault, ReceivedFile, RecordedRequest, SimulatorState

RECEIVERS = "/receivers/"


class ReceiverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str = Field(min_length=1)


log = logging.getLogger(__name__)


def messenger_routes(state: SimulatorState, http: Slot[httpx.AsyncClient]) -> list[BaseRoute]:
    async def outgoing(request: Request) -> Response:
        provider: str = request.path_params["provider"]
        raw = await request.body()
        payload = _json_or_none(raw)
        fault = state.take_fault(request.url.path)
        answer_id, replayed = _take_key(state, request, fault)
        files: list[ReceivedFile] = []
        if (fault is None or fault.status is None) and not replayed:
            files = await fetch_all(http.get(), _attachment_urls(payload))
        secret = state.secrets.get(provider)
        signature = request.headers.get(OMNI_SIGNATURE_HEADER)
        _record(
            state,
            request,
            fault,
            _status(fault, 200),
            provider=provider,
            raw=raw,
            payload=payload,
            signature_valid=None if secret is None else verify_hmac_sha256(secret, raw, signature),
            answer_id=answer_id,
            replayed=replayed,
            files=files,
        )
        faulted = await _apply(request, fault)
        return faulted if faulted is not None else JSONResponse({"message_id": answer_id})

    async def receive(request: Request) -> Response:
        name: str = request.path_params["name"]
        raw = await request.body()
        fault = state.take_fault(request.url.path)
        secret = state.secrets.get(_receiver(name))
        valid = None if secret is None else verify_hmac_sha256(secret, raw, request.headers.get(OMNI_SIGNATURE_HEADER))
        # A receiver that knows the secret refuses what it cannot verify, before it takes the key.
        answer_id, replayed = (None, False) if valid is False else _take_key(state, request, fault)
        _record(
            state,
            request,
            fault,
            _status(fault, 401 if valid is False else 200),
            provider=_receiver(name),
            raw=raw,
            payload=_json_or_none(raw),
            signature_valid=valid,
            answer_id=answer_id,
            replayed=replayed,
        )
        faulted = await _apply(request, fault)
        if faulted is not None:
            return faulted
        if valid is False:
            return error_response(401, "bad_signature", "X-Omni-Signature does not match the body")
        return JSONResponse({"received": answer_id})

    async def put_receiver(request: Request) -> Response:
        name: str = request.path_params["name"]
        state.secrets[_receiver(name)] = parse_body(ReceiverBody, await read_json(request)).secret
        return JSONResponse({"name": name, "url": str(request.url_for("receiver", name=name))})

    async def receiver_summary(request: Request) -> Response:
        """What a receiver took: each event once in arrival order, and every attempt counted per Idempotency-Key."""
        name: str = request.path_params["name"]
        recorded = state.select(f"{RECEIVERS}{name}", _receiver(name))
        taken = [r for r in recorded if 200 <= r.status < 300 and not r.replayed]
        attempts = Counter(r.headers.get(IDEMPOTENCY_KEY_HEADER.lower()) or "" for r in recorded)
        return JSONResponse(
            {
                "events": [r.body for r in taken],
                "signatures_valid": [r.signature_valid for r in taken],
                "attempts": dict(attempts),
                "replays": sum(r.replayed for r in recorded),
            }
        )

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
        Route(RECEIVERS + "{name}", receive, methods=["POST"], name="receiver"),
        Route("/_sim/receivers/{name}", put_receiver, methods=["PUT"]),
        Route("/_sim/receivers/{name}", receiver_summary, methods=["GET"]),
    ]


def _take_key(state: SimulatorState, request: Request, fault: Fault | None) -> tuple[str | None, bool]:
    """The answer id of a delivery, and whether its Idempotency-Key was delivered before (answered as then and not
    delivered again); a failed attempt (an armed status) keeps no key."""
    if fault is not None and fault.status is not None:
        return None, False
    key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
    earlier = state.idempotency.get((request.url.path, key)) if key else None
    answer_id = earlier or state.next_answer_id()
    if key:
        state.idempotency[(request.url.path, key)] = answer_id
    return answer_id, earlier is not None


def _receiver(name: str) -> str:
    return f"receiver:{name}"


def _attachment_urls(payload: Any) -> list[str]:
    attachments = payload.get("attachments") if isinstance(payload, dict) else None
    urls = [a.get("url") for a in attachments if isinstance(a, dict)] if isinstance(attachments, list) else []
    return [url for url in urls if isinstance(url, str) and url.startswith(("http://", "https://"))]


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
    files: list[ReceivedFile] | None = None,
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
            files=files or [],
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
