"""HTTP pieces every service shares: the app with its JSON errors, reading JSON bodies, health, readiness and
metrics routes, the server."""

import asyncio
import json
import re
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from omni_runtime.deadlines import protocol_class
from omni_runtime.metrics import Metrics

ReadyCheck = Callable[[], Awaitable[bool]]
B = TypeVar("B", bound=BaseModel)


class ApiError(Exception):
    """Raised by handlers; answered as `{"error", "detail"}` with its status."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def error_response(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.detail)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (no such route, wrong method) in the same JSON shape as ours."""
    assert isinstance(exc, HTTPException)
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    answer = error_response(exc.status_code, error, str(exc.detail))
    answer.headers.update(exc.headers or {})
    return answer


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    """A bug: uvicorn logs the traceback, the client gets the JSON error without it."""
    return error_response(500, "internal_error", "the server failed to answer; the error is logged")


NO_STORE = (b"cache-control", b"no-store")


class NoStore:
    """Answers carry `Cache-Control: no-store` unless they say otherwise: API answers are private and current."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers")
                if not headers:
                    message["headers"] = [NO_STORE]
                elif not any(name.lower() == b"cache-control" for name, _ in headers):
                    MutableHeaders(scope=message).append("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_no_store)


def service_app(routes: Sequence[BaseRoute], lifespan: Lifespan[Any]) -> Starlette:
    """A service's Starlette app: every error answered as `{"error", "detail"}`, answers not cached."""
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_error_handler,
            Exception: internal_error_handler,
        },
    )
    app.add_middleware(NoStore)
    return app


# Deeper than any webhook or API body we read; MongoDB refuses documents nested more than 100 levels.
MAX_JSON_DEPTH = 64


class MalformedJson(ValueError):
    pass


_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def parse_untrusted_json(body: bytes) -> Any:
    """A JSON body as data, or MalformedJson: not JSON, not UTF-8, nested deeper than MAX_JSON_DEPTH, or holding
    text that is not text (a lone surrogate like "\\ud800", which no later step could encode).

    orjson reads what it can (strict RFC 8259 in UTF-8: no lone surrogates, integers within 64 bits); anything it
    refuses is read again by the standard library, so what is accepted, and each refusal's reason, stay exactly
    those of `json.loads` (NaN, a UTF-16 body or a byte order mark are read as it reads them). orjson reads an
    integer beyond 64 bits as a float: a body with a run of 19 or more digits goes to the standard library too."""
    if _LONG_DIGITS.search(body):
        return _parse_with_json(body)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _parse_with_json(body)
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH:  # fewer opening brackets cannot nest deeper
        _check_depth(value)
    return value


def _parse_with_json(body: bytes) -> Any:
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedJson(f"body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    _check_json(value)
    return value


def _check_depth(value: Any) -> None:
    """What orjson read holds only valid text: only the nesting is left to check, containers only."""
    if not isinstance(value, dict | list):
        return
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if depth >= MAX_JSON_DEPTH:
            raise MalformedJson(f"body is nested deeper than {MAX_JSON_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _check_json(value: Any) -> None:
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise MalformedJson(f"body is nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedJson("body holds text that is not valid Unicode (a lone surrogate)") from None


async def read_json(request: Request) -> Any:
    try:
        return parse_untrusted_json(await request.body())
    except MalformedJson as exc:
        raise ApiError(400, "malformed_json", str(exc)) from None
    except ClientDisconnect:
        # Gone before its body arrived (a client that gave up): nothing was done, nobody reads the answer.
        raise ApiError(400, "client_disconnected", "the client went away before sending the whole body") from None


def describe(exc: ValidationError) -> str:
    """The first validation problem as `where: what`, for error answers and parking causes."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


def parse_body(model: type[B], data: Any) -> B:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "invalid_body", describe(exc)) from None


def health_routes(checks: Callable[[], Mapping[str, ReadyCheck]], metrics: Metrics) -> list[BaseRoute]:
    """`/healthz` (the process answers), `/readyz` (every check passes), `/metrics` (Prometheus text)."""

    async def healthz(request: Request) -> Response:
        """Liveness.
        ---
        summary: Liveness; the process answers
        tags: [health]
        responses:
          "200":
            description: '`{"status": "ok", "service": "<name>"}`'
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    status: {type: string, enum: [ok]}
                    service: {type: string}
        """
        return JSONResponse({"status": "ok", "service": metrics.service})

    async def readyz(request: Request) -> Response:
        """Readiness.
        ---
        summary: Readiness; the broker and the database are reachable
        tags: [health]
        responses:
          "200":
            description: every check passed
            content:
              application/json:
                schema: &readiness
                  type: object
                  properties:
                    status: {type: string, enum: [ready, not_ready]}
                    checks: {type: object, additionalProperties: {type: boolean}}
          "503":
            description: a check failed, or the service is still starting
            content:
              application/json:
                schema: *readiness
        """
        current = checks()
        results = {name: await check() for name, check in current.items()}
        ready = bool(current) and all(results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": results},
            status_code=200 if ready else 503,
        )

    async def metrics_route(request: Request) -> Response:
        """Metrics.
        ---
        summary: Prometheus metrics, in the text exposition format
        tags: [health]
        responses:
          "200":
            description: the metrics
            content:
              text/plain:
                schema: {type: string}
        """
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics_route)]


def draining(app: Any) -> asyncio.Event:
    """Set once the server of `app` begins to shut down, before it waits for open connections to finish:
    responses that never end by themselves (event streams) end on it instead of holding the shutdown up."""
    event: asyncio.Event | None = getattr(app.state, "draining", None)
    if event is None:
        event = app.state.draining = asyncio.Event()
    return event


class Server(uvicorn.Server):
    """uvicorn's server, telling the app (through `draining`) when its shutdown begins."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if hasattr(self.config.app, "state"):
            self.config.app.state.draining = asyncio.Event()
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if hasattr(self.config.app, "state"):
            draining(self.config.app).set()
        await super().shutdown(sockets)


# How long a request's headers, and then its body, may take to arrive (REQUEST_*_TIMEOUT_SECONDS).
HEADER_TIMEOUT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 30.0


def server_config(
    app: Any,
    host: str,
    port: int,
    *,
    header_timeout: float = HEADER_TIMEOUT_SECONDS,
    body_timeout: float = BODY_TIMEOUT_SECONDS,
    access_log: bool = False,
    http: str = "auto",
    timeout_graceful_shutdown: int = 10,
) -> uvicorn.Config:
    """uvicorn's settings for a service: our logging, read deadlines on whichever HTTP protocol `http` names."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_class(http, header_timeout, body_timeout),
        log_config=None,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=timeout_graceful_shutdown,
    )


class HttpServer:
    """A uvicorn server run inside the current event loop (services and tests alike)."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        header_timeout: float = HEADER_TIMEOUT_SECONDS,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
        http: str = "auto",
    ) -> None:
        config = server_config(app, host, port, header_timeout=header_timeout, body_timeout=body_timeout, http=http)
        self.server = Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("server stopped during start")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task

    @property
    def port(self) -> int:
        sockets: Sequence[Any] = self.server.servers[0].sockets if self.server.servers else []
        return int(sockets[0].getsockname()[1]) if sockets else self.server.config.port
