"""Composition root of the simulator: its state, the messenger-side routes, the control API and the push client."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_runtime.service import Slot
from omni_runtime.web import ApiError, api_error_handler, error_response
from omni_simulator import meta, telegram, twilio
from omni_simulator.control import control_routes
from omni_simulator.messenger import messenger_routes
from omni_simulator.state import SimulatorState

PUSH_TIMEOUT_SECONDS = 10.0


def create_app(state: SimulatorState | None = None) -> Starlette:
    """The simulator app; pass `state` to inspect what it recorded from the test itself."""
    state = state if state is not None else SimulatorState()
    http: Slot[httpx.AsyncClient] = Slot()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # trust_env=False: pushes go to a local ingress, which an HTTP(S)_PROXY from the environment must not divert.
        async with httpx.AsyncClient(timeout=PUSH_TIMEOUT_SECONDS, trust_env=False) as client:
            http.set(client)
            try:
                yield
            finally:
                http.set(None)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/healthz", healthz),
        *messenger_routes(state, http),
        *control_routes(state, http),
        *telegram.routes(state, http),
        *meta.routes(state, http),
        *twilio.routes(state, http),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={ApiError: api_error_handler, HTTPException: _http_error},
    )
    app.state.simulator = state
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    # Starlette's own 404/405 answers are plain text; every answer here keeps the JSON error shape of docs/api.md.
    assert isinstance(exc, HTTPException)
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, error, str(exc.detail))
