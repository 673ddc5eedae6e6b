"""Reading untrusted webhook bodies: JSON and form data, with 400 answers for what does not parse."""

from typing import Any
from urllib.parse import parse_qsl

from omni_providers.base import WebhookRejected
from omni_runtime.web import MalformedJson, parse_untrusted_json


def parse_json(body: bytes) -> Any:
    """Before any signature is checked: nesting too deep or text that is not text is a 400 like bad JSON."""
    try:
        return parse_untrusted_json(body)
    except MalformedJson as exc:
        raise WebhookRejected(400, "malformed_json", str(exc)) from None


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """`application/x-www-form-urlencoded` pairs in order, repeated names kept."""
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookRejected(400, "malformed_form", f"body is not valid form data: {exc}") from None
