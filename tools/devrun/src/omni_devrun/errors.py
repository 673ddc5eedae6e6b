"""The one error the local run reports to the developer: a sentence saying what failed and what to do."""


class DevrunError(Exception):
    """Something the developer has to fix before the local run can go on; the message says what."""
