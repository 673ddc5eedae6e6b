"""What the HTTP endpoints reach the use cases through: the router's services as the lifespan built them, and the
caller's credentials."""

from dataclasses import dataclass
from typing import cast

from starlette.requests import Request

from omni_router.domain.errors import Unauthorized
from omni_router.domain.model import Operator
from omni_router.service_layer.admin import Admin
from omni_router.service_layer.console import Console
from omni_router.service_layer.contacts import ContactCards
from omni_router.service_layer.desk import Desk
from omni_router.service_layer.replies import Replies
from omni_router.service_layer.streams import Hub, Tickets
from omni_router.service_layer.uploads import Uploads
from omni_router.service_layer.workplace import Workplace
from omni_runtime.service import Slot


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


async def admin(request: Request) -> Admin:
    """The admin use cases, for a request that carries the admin's token."""
    admin = services(request).admin
    await admin.authorize(bearer(request))
    return admin
