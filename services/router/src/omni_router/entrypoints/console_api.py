"""What the operator console needs beyond the operator API: who is signed in, the names it labels chats and transfer
targets with, and the supervisors' overview of queues and operators."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_router.domain.errors import Forbidden
from omni_router.domain.views import operator_view
from omni_router.entrypoints.context import services, signed_in


async def me(request: Request) -> Response:
    """The operator signed in."""
    return JSONResponse(operator_view(await signed_in(request)))


async def directory(request: Request) -> Response:
    """Channel, queue and operator names (no secrets)."""
    await signed_in(request)
    return JSONResponse(await services(request).console.directory())


async def overview(request: Request) -> Response:
    """Queue lengths and waiting times, operators with status and load (supervisors only)."""
    operator = await signed_in(request)
    if not operator.is_supervisor:
        raise Forbidden("forbidden", "only supervisors can see the overview")
    return JSONResponse(await services(request).console.overview())


routes = [
    Route("/api/operator/me", me, methods=["GET"]),
    Route("/api/directory", directory, methods=["GET"]),
    Route("/api/supervisor/overview", overview, methods=["GET"]),
]
