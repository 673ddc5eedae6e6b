"""Provider simulator: a real HTTP app that plays the messenger side in tests and in the local run."""

from omni_simulator.app import create_app
from omni_simulator.state import Fault, RecordedRequest, SimulatorState, StoredFile

__all__ = ["Fault", "RecordedRequest", "SimulatorState", "StoredFile", "create_app"]
