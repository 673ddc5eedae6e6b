"""The router's admin API over HTTP, with its JSON error answers turned into one exception."""

from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8081"
TIMEOUT_SECONDS = 30.0


class ApiFailure(Exception):
    """The router answered an error (`status`, and the API's `error` and `detail`), or could not be reached."""

    def __init__(self, status: int | None, error: str, detail: str) -> None:
        super().__init__(f"{error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail

    def __str__(self) -> str:
        where = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{self.error}: {self.detail}{where}"


def failure_of(answer: httpx.Response) -> ApiFailure:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        return ApiFailure(answer.status_code, str(body["error"]), str(body.get("detail", "")))
    text = answer.text.strip()[:200] or answer.reason_phrase
    return ApiFailure(answer.status_code, "http_error", text)


def unreachable(url: str, exc: httpx.TransportError) -> ApiFailure:
    return ApiFailure(None, "unreachable", f"cannot reach the router at {url}: {exc or type(exc).__name__}")


class AdminClient:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_SECONDS
        )

    def __enter__(self) -> "AdminClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            answer = self._http.request(method, path, json=body, params=params)
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from None
        if answer.is_error:
            raise failure_of(answer)
        return answer.json() if answer.content else None

    def items(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.call("GET", path, params=params)["items"]
        return items
