"""Domain errors as HTTP answers, in this one place: each kind of refusal has its status, and its code and
sentence become the API's `{"error", "detail"}`."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from omni_router.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    InvalidBody,
    NotFound,
    TooLarge,
    Unauthorized,
    Unprocessable,
)
from omni_runtime.web import describe, error_response

STATUSES: dict[type[DomainError], int] = {
    Invalid: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Unprocessable: 422,
}


def http_status(error: DomainError) -> int:
    return next(status for kind, status in STATUSES.items() if isinstance(error, kind))


async def domain_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    detail = describe(exc.error) if isinstance(exc, InvalidBody) else exc.detail
    answer = error_response(http_status(exc), exc.code, detail)
    if not exc.fields:
        return answer
    return JSONResponse({"error": exc.code, "detail": detail, **exc.fields}, status_code=http_status(exc))
