"""Errors that tell the consumer runtime what to do with a message that could not be handled."""


class PermanentError(Exception):
    """Retrying cannot help (bad payload, a 4xx that is not a rate limit): park at once."""


class RetryLater(Exception):
    """A transient failure; `retry_after` (seconds) is the other side's own hint, when it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class BrokerUnavailable(Exception):
    """The broker did not confirm a publish in time."""
