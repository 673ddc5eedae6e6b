"""Errors that tell the consumer runtime what to do with a message that could not be handled."""


class PermanentError(Exception):
    """Retrying cannot help (bad payload, a 4xx that is not a rate limit): park at once."""


class RetryLater(Exception):
    """A transient failure; `retry_after` (seconds) is the other side's own hint, when it gave one.

    `throttled`: the other side limits our rate (a 429), so the consumer does not try again at once.
    """

    def __init__(self, reason: str, retry_after: float | None = None, *, throttled: bool = False) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.throttled = throttled


class BrokerUnavailable(Exception):
    """The broker did not confirm a publish in time."""


class TopologyConflict(Exception):
    """The broker holds a queue declared differently (e.g. a classic queue where this version needs a quorum one)
    and it still holds messages, so the service refuses to start rather than lose them."""


class Deferred(Exception):
    """Not this message's turn yet (an earlier one must go first): it waits in the shortest wait queue and comes
    back, without spending an attempt."""


class Unrecorded(Exception):
    """The handler's effect outside our systems took place (a messenger accepted a send), but writing it down failed.

    `outcome` (text the consumer's `record` step reads) is what is left to write down. The consumer tries only
    that step again, at once and then through the wait queues with the outcome in a header; it never runs the
    handler again, so the effect is not repeated.
    """

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
