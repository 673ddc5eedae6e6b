"""Bad input met by pure code: provider names, nesting, lone surrogates, URLs, file names, ports, credentials."""

import asyncio
import io
import json
import logging
import socket
import time
from typing import Any

import httpx
import pytest

from omni_contracts import MessageOutgoing
from omni_devrun.standins import port_is_free
from omni_providers import Channel, WebhookRejected
from omni_providers.meta import MessengerProvider, WhatsAppProvider
from omni_providers.payloads import parse_json
from omni_providers.registry import ProviderRegistry
from omni_providers.thirdparty import ThirdPartyProvider
from omni_router.entrypoints.files_api import content_disposition
from omni_runtime.errors import PermanentError
from omni_runtime.logs import RedactCredentials
from tests.unit.test_meta import (
    NUMBER,
    PAGE,
    SETTINGS,
    Channels,
    messenger_event,
    post,
    receive,
    text_item,
    wa_event,
    wa_message,
)

# --- ingress memory: provider names ----------------------------------------------------------------


def test_unknown_provider_names_are_not_remembered() -> None:
    """Every webhook path names a provider before anything is checked: a stranger's names must not pile up."""
    registry = ProviderRegistry(SETTINGS)
    registry.get("acme")
    registry.get("telegram")
    before = len(registry._instances)
    for n in range(5_000):
        provider = registry.get(f"stranger-{n}-" + "x" * 200)
        assert isinstance(provider, ThirdPartyProvider)
    assert len(registry._instances) == before
    assert registry.get("acme").name == "acme"


def test_registered_providers_are_kept() -> None:
    made: list[str] = []

    def factory(name: str, settings: Any) -> ThirdPartyProvider:
        made.append(name)
        return ThirdPartyProvider(name, settings)

    registry = ProviderRegistry(SETTINGS, {"plugged": factory})
    assert registry.get("plugged") is registry.get("plugged")
    assert made == ["plugged"]


# --- JSON too deep, text that is not text ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 1000 + b"]" * 1000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b"[" * 100 + b"]" * 100,  # parses, but deeper than any webhook or API body we read
    ],
)
def test_deeply_nested_json_is_a_400(raw: bytes) -> None:
    with pytest.raises(WebhookRejected) as caught:
        parse_json(raw)
    assert (caught.value.status, caught.value.error) == (400, "malformed_json")


def test_ordinary_nesting_is_fine() -> None:
    assert parse_json(b"[" * 20 + b"]" * 20) == json.loads(b"[" * 20 + b"]" * 20)


def test_lone_surrogates_in_a_body_are_a_400() -> None:
    with pytest.raises(WebhookRejected) as caught:
        parse_json(json.dumps({"text": "\ud800x"}).encode())
    assert caught.value.status == 400
    assert parse_json(json.dumps({"text": "\U0001f600 ok"}).encode()) == {"text": "\U0001f600 ok"}


def test_messenger_text_with_a_lone_surrogate_is_a_400() -> None:
    body = messenger_event("1122", text_item("m-1", "\ud800x"))
    with pytest.raises(WebhookRejected) as caught:
        receive(MessengerProvider("messenger", SETTINGS), post(body, "page-secret"), Channels(PAGE))
    assert caught.value.status == 400


def test_whatsapp_text_with_a_lone_surrogate_is_a_400() -> None:
    body = wa_event("5566", messages=[wa_message("w-1", "text", {"body": "\ud800x"})])
    with pytest.raises(WebhookRejected) as caught:
        receive(WhatsAppProvider("whatsapp", SETTINGS), post(body, "wa-secret"), Channels(NUMBER))
    assert caught.value.status == 400


# --- third-party outgoing_url ---------------------------------------------------------------------


@pytest.mark.parametrize("url", ["file:///etc/passwd", "not a url", "ftp://files.example.test/x", "http://"])
def test_an_unsupported_outgoing_url_is_a_permanent_failure(url: str) -> None:
    channel = Channel(
        id="c1",
        name="Acme",
        provider="acme",
        source="bot-1",
        queue_id="q",
        settings={"secret": "k", "outgoing_url": url},
    )
    message = MessageOutgoing(
        message_id="r-1", chat_id="chat-1", channel_id="c1", provider="acme", recipient="cust", text="hi"
    )

    async def send() -> None:
        async with httpx.AsyncClient() as http:
            await ThirdPartyProvider("acme").send(http, channel, message)

    with pytest.raises(PermanentError, match="outgoing_url"):
        asyncio.run(send())


# --- file names in Content-Disposition --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cat.png", 'attachment; filename="cat.png"'),
        ("отчёт.pdf", "attachment; filename*=utf-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.pdf"),
        ("a\r\nSet-Cookie: x=1.pdf", "attachment; filename*=utf-8''a%0D%0ASet-Cookie%3A%20x%3D1.pdf"),
        ('say "hi".txt', "attachment; filename*=utf-8''say%20%22hi%22.txt"),
        ("\ud800.txt", "attachment; filename*=utf-8''%3F.txt"),
    ],
)
def test_content_disposition_is_rfc_6266_and_latin_1(name: str, expected: str) -> None:
    header = content_disposition("attachment", name)
    assert header == expected
    header.encode("latin-1")  # what HTTP/1.1 header values must be
    assert "\r" not in header and "\n" not in header


# --- the local run: ports in TIME_WAIT ---------------------------------------------------------------


def test_a_port_with_connections_in_time_wait_is_free() -> None:
    """What Ctrl-C leaves behind: the server side closed first, so its end of each connection waits in TIME_WAIT."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers bind
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        served.close()  # the server closes first: its side goes to TIME_WAIT
        time.sleep(0.05)
        client.close()
    time.sleep(0.05)
    assert port_is_free(port), "a port held only by TIME_WAIT connections is free for a server to bind"
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", port))
        busy.listen()
        assert not port_is_free(port)


# --- credentials never in logs --------------------------------------------------------------------


def test_credentials_in_query_strings_are_redacted_from_log_lines() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactCredentials())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/api/events?token=op-secret-1&last_event_id=abc",
            "1.1",
            200,
        )
        logger.info("GET /api/events?ticket=tk-secret-2")
        logger.info("GET /webhooks/messenger?hub.mode=subscribe&hub.verify_token=vt-secret-3&hub.challenge=c")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    for secret in ("op-secret-1", "tk-secret-2", "vt-secret-3"):
        assert secret not in text
    assert "/api/events?token=[redacted]&last_event_id=abc" in text
    assert "hub.challenge=c" in text
