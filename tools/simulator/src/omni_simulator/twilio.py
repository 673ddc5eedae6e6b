"""Twilio's side: the REST API under /twilio (Messages.json, media with basic auth), and signed webhook pushes."""

import httpx
from starlette.routing import BaseRoute

from omni_runtime.service import Slot
from omni_simulator.state import SimulatorState

PREFIX = "/twilio"


def routes(state: SimulatorState, http: Slot[httpx.AsyncClient]) -> list[BaseRoute]:
    """The routes this messenger answers under PREFIX (none until its adapter is built)."""
    return []
