"""The URL ingress hands providers (Twilio signs it): read from the request's scope, it is what Starlette's
`request.url` makes of the same path and query, unusual characters included."""

import pytest
from starlette.requests import Request

from omni_ingress.app import public_url

CASES = [
    ("/webhooks/twilio/c1", b""),
    ("/webhooks/twilio/c1", b"a=1&b=%20x&bodySHA256=abc"),
    ("/webhooks/test/receive", b"x=\xc3\xa9"),
    ("/webhooks/twilio/\u00e9", b""),
    ("/webhooks/a?b", b"x"),
    ("/webhooks/a#b", b""),
    ("/webhooks/a\\b", b"q#f"),
    ("/webhooks/a\tb", b"q\tr\n"),
    ("/webhooks/%2F x", b"a b"),
    ("//webhooks", b""),
]


@pytest.mark.parametrize(("path", "query"), CASES)
def test_the_public_url_is_what_starlette_reads_from_the_same_request(path: str, query: bytes) -> None:
    request = Request(
        {
            "type": "http",
            "path": path,
            "query_string": query,
            "headers": [(b"host", b"ingress:8000")],
            "scheme": "http",
            "server": ("ingress", 8000),
        }
    )
    expected_query = request.url.query
    expected = "https://omni.example" + request.url.path + (f"?{expected_query}" if expected_query else "")

    assert public_url("https://omni.example/", request) == expected
