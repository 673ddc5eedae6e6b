"""Meta's side: the Graph API under /graph (Messenger and WhatsApp Cloud send, profiles, media) and webhook pushes."""

import httpx
from starlette.routing import BaseRoute

from omni_runtime.service import Slot
from omni_simulator.state import SimulatorState

PREFIX = "/graph"


def routes(state: SimulatorState, http: Slot[httpx.AsyncClient]) -> list[BaseRoute]:
    """The routes this messenger answers under PREFIX (none until its adapter is built)."""
    return []
