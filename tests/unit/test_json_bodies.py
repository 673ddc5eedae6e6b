"""parse_untrusted_json reads bodies with orjson but accepts and refuses exactly what `json.loads` (with the depth
and text checks) did: the reference below is the standard-library reading it replaced."""

import json
import math
from typing import Any

import orjson
import pytest

from omni_runtime.web import MAX_JSON_DEPTH, MalformedJson, parse_untrusted_json


def reference(body: bytes) -> Any:
    """The reading before orjson: json.loads, then every container's depth and every text checked."""
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedJson(f"body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        texts = [item] if isinstance(item, str) else list(item) if isinstance(item, dict) else []
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise MalformedJson("body holds text that is not valid Unicode (a lone surrogate)") from None
        if isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise MalformedJson(f"body is nested deeper than {MAX_JSON_DEPTH} levels")
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return value


BODIES = [
    b'{"a": 1, "b": [true, false, null], "c": {"d": "e\\u00e9\\ud83d\\ude00"}}',
    b'"just text"',
    b"42",
    b"-0",
    b"1.5e3",
    b"1e400",  # json reads infinity; orjson refuses, so json reads it
    b"NaN",
    b'{"x": NaN, "y": -Infinity}',
    b"123456789012345678901234567890",  # beyond 64 bits: json reads it exactly
    b"-9223372036854775809",
    b"18446744073709551615",
    b'{"k": 1, "k": 2}',  # the last one wins in both
    b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
    '{"a": "b"}'.encode("utf-16"),
    '{"a": "b"}'.encode("utf-32"),
    b'{"t": "\\ud800x"}',  # a lone surrogate: refused
    b'{"\\udfff": 1}',
    b"\xff\xfe\x00",
    b'{"a": "\xc3\x28"}',  # invalid UTF-8
    b"{not json",
    b"",
    b"   ",
    b'{"a": 1,}',
    b"[1, 2] extra",
    b'"tab\tinside"',  # a raw control character: refused by both
    b"[" * 63 + b"]" * 63,
    b"[" * 64 + b"]" * 64,
    b"[" * 65 + b"]" * 65,
    b'{"a":' * 64 + b"1" + b"}" * 64,
    b'{"a":' * 65 + b"1" + b"}" * 65,
    b"[" * 1000 + b"]" * 1000,
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
]


def outcome(read: Any, body: bytes) -> tuple[str, Any]:
    try:
        return ("value", read(body))
    except MalformedJson as exc:
        return ("refused", str(exc))


@pytest.mark.parametrize("body", BODIES)
def test_bodies_read_as_the_standard_library_reads_them(body: bytes) -> None:
    ours, theirs = outcome(parse_untrusted_json, body), outcome(reference, body)
    if ours[0] == "value" and isinstance(ours[1], float) and math.isnan(ours[1]):
        assert theirs[0] == "value" and math.isnan(theirs[1])
    else:
        assert repr(ours) == repr(theirs)  # repr: NaN inside containers compares by identity otherwise


def test_orjson_reads_the_ordinary_bodies() -> None:
    """The fast path is taken for a webhook-like body (orjson reads it), and gives json's value."""
    body = json.dumps({"id": "m-1", "text": "hello \U0001f600", "n": 3, "f": 0.25, "list": [{"a": None}]}).encode()
    assert orjson.loads(body) == json.loads(body) == parse_untrusted_json(body)


def test_depth_is_refused_with_its_reason() -> None:
    with pytest.raises(MalformedJson, match=f"deeper than {MAX_JSON_DEPTH}"):
        parse_untrusted_json(b"[" * 100 + b"]" * 100)


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1])
def test_the_depth_limit_is_exact_whether_or_not_the_nesting_is_walked(levels: int) -> None:
    """A body with few opening brackets is not walked: at most that many levels; the limit is the same."""
    nested = b'{"a": ' * (levels // 2) + b"[" * (levels - levels // 2) + b"1" + b"]" * (levels - levels // 2)
    body = nested + b"}" * (levels // 2)
    padded = b'{"pad": "' + b"[{" * 40 + b'", "v": ' + body + b"}"  # brackets in text: walked, one level more
    if levels > MAX_JSON_DEPTH:
        with pytest.raises(MalformedJson, match=f"deeper than {MAX_JSON_DEPTH}"):
            parse_untrusted_json(body)
    else:
        assert parse_untrusted_json(body) == json.loads(body)
    if levels + 1 > MAX_JSON_DEPTH:
        with pytest.raises(MalformedJson, match=f"deeper than {MAX_JSON_DEPTH}"):
            parse_untrusted_json(padded)
    else:
        assert parse_untrusted_json(padded) == json.loads(padded)
