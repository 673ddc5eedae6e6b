"""How any of our servers serves a stored file: never as active content, names as RFC 6266 `filename*`."""

import pytest

from omni_runtime.files import StoredFile, content_disposition, file_headers, served_type


def stored(name: str, content_type: str | None) -> StoredFile:
    return StoredFile(file_id="f1", file_name=name, content_type=content_type, size=42)


@pytest.mark.parametrize("content_type", ["image/png", "image/jpeg", "image/gif", "image/webp", "IMAGE/PNG"])
def test_raster_images_are_inline(content_type: str) -> None:
    headers = file_headers(stored("chart.png", content_type))
    assert headers["Content-Disposition"] == 'inline; filename="chart.png"'


@pytest.mark.parametrize("content_type", ["image/svg+xml", "text/html", "application/pdf", None, "not a type\r\nX: y"])
def test_everything_else_is_a_sandboxed_unsniffed_download(content_type: str | None) -> None:
    headers = file_headers(stored("Rechnung März.pdf", content_type))
    assert headers["Content-Disposition"] == "attachment; filename*=utf-8''Rechnung%20M%C3%A4rz.pdf"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert headers["Content-Length"] == "42"
    assert headers["Content-Type"] == (
        content_type
        if content_type in ("image/svg+xml", "text/html", "application/pdf")
        else "application/octet-stream"
    )


def test_names_that_could_break_the_header_are_encoded() -> None:
    assert content_disposition("attachment", 'a"b\r\nc.txt') == "attachment; filename*=utf-8''a%22b%0D%0Ac.txt"
    assert served_type("text/plain; charset=utf-8") == "text/plain; charset=utf-8"
