"""A consumer of `profiles.requested` whose handler kills its own process on a poison request, for the
delivery-limit test: `python -m tests.support.crashing_consumer <log path>`, settings from the environment.

It runs the services' own Broker and Consumer; only the handler is the test's. Each handled request, and
each parked one (through the consumer's park hook), is appended to the log as one line.
"""

import asyncio
import os
import signal
import sys
from pathlib import Path

from omni_contracts import ProfileRequested
from omni_runtime.broker import Broker
from omni_runtime.metrics import Metrics
from omni_runtime.service import configured_consumer, topology_of
from omni_runtime.settings import Settings
from omni_runtime.topology import PROFILES_REQUESTED

POISON = "poison"
CRASH_EXIT_CODE = 17


async def main(log: Path) -> None:
    settings = Settings()
    broker = Broker(settings.amqp_url, topology=topology_of(settings))
    await broker.connect()

    def note(line: str) -> None:
        with log.open("a") as out:
            out.write(line + "\n")

    async def handle(request: ProfileRequested) -> None:
        if request.external_id == POISON:
            note(f"crashing on {request.external_id}")
            os._exit(CRASH_EXIT_CODE)  # the process dies holding the message: nothing is acked or rejected
        note(f"handled {request.external_id}")

    async def park(request: ProfileRequested | None, cause: str) -> None:
        note(f"parked {request.external_id if request else '?'}: {cause}")

    consumer = configured_consumer(
        broker,
        settings,
        Metrics("crashing-consumer"),
        PROFILES_REQUESTED,
        ProfileRequested.model_validate_json,
        handle,
        park,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await consumer.start()
    note("started")
    await stop.wait()
    await consumer.stop()
    await broker.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
