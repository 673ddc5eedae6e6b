"""What a use case refuses, with the API's error code; the entry points turn each kind into an answer."""

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError


class DomainError(Exception):
    """A refusal: `code` is the API's `error`, `detail` its sentence; `fields` more of the answer's members (such
    as `window_ends_at`)."""

    def __init__(self, code: str, detail: str, fields: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.fields = dict(fields or {})


class NotFound(DomainError):
    """No such thing, or not one the caller may see (ids don't leak)."""


class Conflict(DomainError):
    """The thing is not in a state that allows this now (taken, closed, changed meanwhile)."""


class Invalid(DomainError):
    """The request names something unknown or breaks a rule of what may be stored."""


class InvalidBody(Invalid):
    """A body that its model refused; the entry points describe the first problem."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__("invalid_body", str(error))
        self.error = error


class Unprocessable(DomainError):
    """A well-formed request that contradicts an earlier one (an Idempotency-Key reused for another request)."""


class TooLarge(DomainError):
    """A body or file past its size limit; nothing of it is kept."""


class Unauthorized(DomainError):
    """No credentials, or unknown ones."""


class Forbidden(DomainError):
    """Known credentials that may not do this."""
