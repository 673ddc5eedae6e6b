"""What the HTTP endpoints reach the use cases through: the router's services as the lifespan built them, and the
caller's credentials (an operator's token, or the admin API's tokens and their scopes)."""

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from starlette.requests import Request
from starlette.responses import Response

from omni_router.domain.errors import Unauthorized
from omni_router.domain.model import Operator
from omni_router.domain.tokens import ADMIN, Principal
from omni_router.service_layer.admin import Admin
from omni_router.service_layer.console import Console
from omni_router.service_layer.contacts import ContactCards
from omni_router.service_layer.desk import Desk
from omni_router.service_layer.integration_events import Webhooks
from omni_router.service_layer.replies import Replies
from omni_router.service_layer.reports import Supervision
from omni_router.service_layer.streams import Hub, Tickets
from omni_router.service_layer.tokens import Audit, Tokens
from omni_router.service_layer.uploads import Uploads
from omni_router.service_layer.workplace import Workplace
from omni_runtime.service import Slot

Endpoint = Callable[[Request], Awaitable[Response]]
# Where the caller the admin API identified is kept for the request (the audit trail reads it).
ACTOR = "audit_actor"


@dataclass
class Services:
    desk: Desk
    replies: Replies
    admin: Admin
    console: Console
    hub: Hub
    tickets: Tickets
    workplace: Workplace
    uploads: Uploads
    contacts: ContactCards
    tokens: Tokens
    audit: Audit
    webhooks: Webhooks
    supervision: Supervision


def services(request: Request) -> Services:
    """The running router's services (503 while it starts or stops)."""
    return cast(Slot[Services], request.app.state.service).get()


def bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("unauthorized", "a bearer token is required")
    return token.strip()


async def signed_in(request: Request) -> Operator:
    """The operator whose bearer token the request carries."""
    return await services(request).desk.operator_for(bearer(request))


async def authorized(request: Request, scope: str = ADMIN) -> Principal:
    """The admin API's caller, if its token opens `scope`: 401 for no, an unknown or a revoked token; 403 for an
    operator's token or a token without the scope (`insufficient_scope`)."""
    tokens = services(request).tokens
    principal = await tokens.identify(bearer(request))
    setattr(request.state, ACTOR, principal)  # a refusal for want of scope is still this caller's
    tokens.check(principal, scope)
    return principal


async def admin(request: Request, scope: str = ADMIN) -> Admin:
    """The admin use cases, for a request whose token opens `scope` (`admin` by default)."""
    await authorized(request, scope)
    return services(request).admin


def require_scope(scope: str) -> Callable[[Endpoint], Endpoint]:
    """An endpoint that answers only callers whose token opens `scope` (e.g. `reports:read`; `admin` and the
    bootstrap ADMIN_TOKEN open every scope). Its docstring (the OpenAPI operation) is kept."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def checked(request: Request) -> Response:
            await authorized(request, scope)
            return await endpoint(request)

        return checked

    return decorate
