"""Signed media links: one file per token, until it expires, and nothing a changed token could reach."""

import pytest

from omni_providers.media import MediaLinks, MediaTokenExpired, MediaTokenInvalid

KEY = "k" * 40
FILE_ID = "65f0a1b2c3d4e5f6a7b8c9d0"


def token_of(url: str) -> str:
    return url.rsplit("/media/", 1)[1]


def test_a_link_names_its_file_until_it_expires() -> None:
    links = MediaLinks(KEY, ttl_seconds=600, base_url="https://chat.example.com/")
    url = links.url_for(FILE_ID, now=1_000_000.4)
    assert url.startswith("https://chat.example.com/media/65f0a1b2c3d4e5f6a7b8c9d0.1000600.")
    assert links.file_of(token_of(url), now=1_000_599.9) == FILE_ID
    with pytest.raises(MediaTokenExpired):
        links.file_of(token_of(url), now=1_000_600)


def test_changing_any_part_or_the_key_breaks_the_token() -> None:
    links = MediaLinks(KEY, 600, "http://x")
    token = links.token_for(FILE_ID, 2_000_000_000)
    file_id, expires, signature = token.split(".")
    forged = [
        f"65f0a1b2c3d4e5f6a7b8c9d1.{expires}.{signature}",  # another file
        f"{file_id}.{int(expires) + 1}.{signature}",  # a later expiry
        f"{file_id}.{expires}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        f"{file_id}.{expires}",
        f"../{file_id}.{expires}.{signature}",
        "",
    ]
    for bad in forged:
        with pytest.raises(MediaTokenInvalid):
            links.file_of(bad, now=0)
    with pytest.raises(MediaTokenInvalid):
        MediaLinks("another key of enough length, 32+ chars", 600, "http://x").file_of(token, now=0)


@pytest.mark.parametrize("file_id", ["a.b", "a/b", "", "x" * 65])
def test_only_id_like_file_ids_are_signed(file_id: str) -> None:
    with pytest.raises(ValueError, match="file id"):
        MediaLinks(KEY, 600, "http://x").token_for(file_id, 1)


def test_a_key_is_required() -> None:
    with pytest.raises(ValueError, match="key"):
        MediaLinks("", 600, "http://x")
