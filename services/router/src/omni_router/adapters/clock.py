"""The system clock, and ids that sort by creation time."""

import time
from datetime import UTC, datetime

from omni_runtime.ids import new_id


class SystemClock:
    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def new_id(self) -> str:
        return new_id()
