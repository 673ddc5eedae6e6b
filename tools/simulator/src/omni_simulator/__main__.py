"""`python -m omni_simulator`: the simulator on SIMULATOR_HOST:SIMULATOR_PORT, logging JSON to stdout."""

import logging

import uvicorn

from omni_runtime.logs import configure_logging
from omni_simulator.app import create_app
from omni_simulator.settings import SimulatorSettings

log = logging.getLogger("omni_simulator")


def main() -> None:
    settings = SimulatorSettings()
    configure_logging("simulator", settings.log_level)
    log.info("starting", extra={"host": settings.host, "port": settings.port})
    uvicorn.run(create_app(), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
