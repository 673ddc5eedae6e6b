"""The operator console in headless Chromium (Debian's `chromium`, driven by Playwright): a customer writes,
the chat shows up live in two operators' consoles, one accepts, reads and replies, the other loses the chat."""

import re
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Route,
    ViewportSize,
    async_playwright,
    expect,
)

from omni_runtime.database import Database
from tests.support.seed import customer_message, seed_desk
from tests.support.stack import Simulator, Stack, eventually, signed

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)

expect.set_options(timeout=10_000)


@dataclass
class Console:
    """One operator's console page, and every error its browser console reported."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)

    def record(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url')})")

    def crashed(self, error: Error) -> None:
        self.errors.append(f"uncaught: {error}")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def sign_in(browser: Browser, base_url: str, token: str) -> Console:
    """A fresh browser context (its own sessionStorage) signed in with the keyboard, its event stream live."""
    context = await browser.new_context(viewport=DESKTOP)
    console = Console(context, await context.new_page())
    console.page.on("console", console.record)
    console.page.on("pageerror", console.crashed)
    await console.page.goto(f"{base_url}/")
    await expect(console.page.locator("#token")).to_be_focused()
    await console.page.keyboard.type(token)
    await console.page.keyboard.press("Enter")
    await expect(console.page.locator("#live")).to_have_text("Live")
    return console


async def test_chat_arrives_live_is_accepted_answered_and_leaves_the_other_console(
    stack: Stack, db: Database, simulator: Simulator, browser: Browser
) -> None:
    await stack.start("ingress", "router", "dispatcher")
    desk = await seed_desk(stack, operators=2, outgoing_url=f"{simulator.url}/thirdparty/acme/outgoing")
    (_a_id, a_token), (_b_id, b_token) = desk.operators.items()
    a = await sign_in(browser, stack.url("router"), a_token)
    b = await sign_in(browser, stack.url("router"), b_token)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    raw, headers = signed(customer_message("in-1", text="Hello, my order is late"), desk.secret)
    async with stack.client("ingress") as ingress:
        assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200
    stored = await eventually(lambda: db.messages.find_one({"provider_message_id": "in-1", "routed": True}))
    chat_id = stored["chat_id"]

    # Both consoles show the offered chat without a reload: contact, channel icon, time, unread badge.
    a_item = a.page.locator(f'.chat-item[data-chat-id="{chat_id}"]')
    b_item = b.page.locator(f'.chat-item[data-chat-id="{chat_id}"]')
    for item in (a_item, b_item):
        await expect(item.locator(".chat-name")).to_have_text("Ann Customer")
        await expect(item.locator(".badge")).to_have_text("1")
        await expect(item.locator(".channel-icon")).to_be_visible()
        await expect(item.locator("time")).not_to_be_empty()
    await a.page.screenshot(path=ARTIFACTS / "list-1280x800.png")

    # A opens it (reading marks it read), accepts; B's console drops it as soon as A holds it.
    await a_item.click()
    await expect(a.page.locator(".msg.incoming .msg-text")).to_have_text("Hello, my order is late")
    await a.page.locator('#chat-actions [data-action="accept"]').click()
    await expect(b_item).to_have_count(0)
    await expect(a.page.locator('.filter[data-filter="mine"]')).to_have_attribute("aria-pressed", "true")
    await expect(a_item.locator(".badge")).to_have_count(0)
    await expect(a.page.locator('#chat-actions [data-action="close"]')).to_be_visible()

    # The reply is typed: Shift+Enter is a new line, Enter sends; the page follows it to `sent`.
    await expect(a.page.locator("#reply")).to_be_focused()
    await a.page.keyboard.type("Hi Ann,")
    await a.page.keyboard.press("Shift+Enter")
    await a.page.keyboard.type("we are on it.")
    await a.page.keyboard.press("Enter")
    outgoing = a.page.locator(".msg.outgoing")
    await expect(outgoing).to_have_count(1)
    await expect(outgoing.locator(".msg-status")).to_have_text("sent")
    [request] = await simulator.requests()
    assert request["body"]["chat_id"] == chat_id
    assert request["body"]["text"] == "Hi Ann,\nwe are on it."
    await a.page.screenshot(path=ARTIFACTS / "conversation-1280x800.png")

    # On a phone the conversation takes the whole screen and the back button returns to the list.
    await a.page.set_viewport_size(PHONE)
    await expect(a.page.locator("#back")).to_be_visible()
    await a.page.screenshot(path=ARTIFACTS / "conversation-390x844.png")
    await a.page.locator("#back").click()
    await expect(a_item).to_be_focused()
    await a.page.screenshot(path=ARTIFACTS / "list-390x844.png")

    # What the pages showed is what the API says: A holds the chat, read; B may not see it.
    async with stack.client("router", a_token) as client:
        chat = (await client.get(f"/api/chats/{chat_id}")).json()
        assert (chat["status"], chat["unread_count"]) == ("assigned", 0)
    async with stack.client("router", b_token) as client:
        assert (await client.get(f"/api/chats/{chat_id}")).status_code == 404
    assert a.errors == []
    assert b.errors == []
    for console in (a, b):
        await console.context.close()


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour, so that the browser has something to decode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def customer_writes(stack: Stack, secret: str, *bodies: dict[str, Any]) -> None:
    async with stack.client("ingress") as ingress:
        for body in bodies:
            raw, headers = signed(body, secret)
            assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200


async def test_conversation_pages_back_fills_in_attachments_shows_failures_and_transfers(
    stack: Stack, db: Database, simulator: Simulator, browser: Browser
) -> None:
    picture, terms = png(48, 32, (200, 40, 40)), b"%PDF-1.4\n% terms of service\n"
    async with simulator.client() as control:
        for name, data, kind in (("cat.png", picture, "image/png"), ("terms.pdf", terms, "application/pdf")):
            stored = await control.put(f"/_sim/files/{name}", content=data, headers={"Content-Type": kind})
            assert stored.status_code == 201
    # No attachments service yet: the files of the next message stay pending until it starts.
    await stack.start("ingress", "router", "dispatcher")
    desk = await seed_desk(stack, operators=2, outgoing_url=f"{simulator.url}/thirdparty/acme/outgoing")
    (_a_id, a_token), (b_id, b_token) = desk.operators.items()
    await customer_writes(stack, desk.secret, *(customer_message(f"h-{n}", text=f"message {n}") for n in range(40)))
    await eventually(lambda: _routed(db, 40))
    a = await sign_in(browser, stack.url("router"), a_token)
    b = await sign_in(browser, stack.url("router"), b_token)

    # The newest page first; scrolling up brings the older ones until the start of the conversation.
    item = a.page.locator(".chat-item")
    await expect(item.locator(".badge")).to_have_text("40")
    await item.click()
    messages = a.page.locator("#message-items .msg")
    await expect(messages).to_have_count(30)
    await expect(messages.last).to_contain_text("message 39")
    await a.page.locator("#messages").evaluate("box => box.scrollTo(0, 0)")
    await expect(messages).to_have_count(40)
    await expect(messages.first).to_contain_text("message 0")
    await expect(a.page.locator("#history")).to_have_text("Start of the conversation")
    await a.page.locator('#chat-actions [data-action="accept"]').click()

    # Attachments show as pending, then fill in when they land: the image inline, the PDF as a download.
    attachments = [
        {"url": f"{simulator.url}/files/cat.png", "content_type": "image/png", "file_name": "cat.png"},
        {"url": f"{simulator.url}/files/terms.pdf", "content_type": "application/pdf", "file_name": "terms.pdf"},
    ]
    await customer_writes(
        stack, desk.secret, customer_message("files", type="image", text="see", attachments=attachments)
    )
    newest = messages.last
    await expect(newest.locator(".att-pending")).to_have_count(2)
    await stack.start("attachments")
    image = newest.locator("img.att-image")
    await expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    await eventually(lambda: image.evaluate("img => img.complete && img.naturalWidth === 48"))
    link = newest.locator("a.att-file")
    await expect(link).to_have_text(f"Download terms.pdf ({len(terms)} B)")
    async with a.page.expect_download() as downloading:
        await link.click()
    download = await downloading.value
    assert download.suggested_filename == "terms.pdf"
    assert Path(await download.path()).read_bytes() == terms

    # A reply the messenger refuses ends `failed` with its reason.
    await simulator.fault(path_prefix="/thirdparty/", status=400, count=None, body="recipient unknown")
    await a.page.locator("#reply").fill("are you there?")
    await a.page.locator("#reply").press("Enter")
    await expect(a.page.locator(".msg.outgoing .msg-status")).to_have_text(re.compile(r"^failed: .*400"))
    await a.page.screenshot(path=ARTIFACTS / "conversation-details-1280x800.png")

    # Transfer to B: the chat leaves A's console and lands in B's, held by B.
    await a.page.locator('#chat-actions [data-action="transfer"]').click()
    await a.page.locator("#transfer-target").select_option(f"operator:{b_id}")
    await a.page.locator("#transfer-form button[type=submit]").click()
    await expect(item).to_have_count(0)
    await expect(a.page.locator("#chat-view")).to_be_hidden()
    await expect(b.page.locator(".toast", has_text="transferred to you")).to_be_visible()
    await expect(b.page.locator('[data-count="mine"]')).to_have_text("1")
    assert a.errors == []
    assert b.errors == []


async def _routed(db: Database, count: int) -> bool:
    return await db.messages.count_documents({"direction": "incoming", "routed": True}) >= count


async def test_supervisor_overview_and_an_accept_lost_to_another_operator(
    stack: Stack, db: Database, browser: Browser
) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=2)
    (a_id, a_token), (_b_id, b_token) = desk.operators.items()
    async with stack.admin() as admin:
        created = await admin.post("/api/admin/operators", json={"name": "Sam", "role": "supervisor", "max_chats": 3})
        supervisor_token = created.json()["token"]
    b = await sign_in(browser, stack.url("router"), b_token)
    s = await sign_in(browser, stack.url("router"), supervisor_token)
    await customer_writes(stack, desk.secret, customer_message("in-1"))
    item = b.page.locator(".chat-item", has_text="Ann Customer")
    await item.click()

    # A takes the chat between B's click and B's request reaching the router: B gets 409 and loses it.
    async def a_accepts_first(route: Route) -> None:
        chat_id = route.request.url.split("/api/chats/")[1].split("/")[0]
        async with stack.client("router", a_token) as client:
            assert (await client.post(f"/api/chats/{chat_id}/accept")).status_code == 200
        await route.continue_()

    await b.page.route("**/api/chats/*/accept", a_accepts_first)
    await b.page.locator('#chat-actions [data-action="accept"]').click()
    await expect(b.page.locator(".toast", has_text="taken by someone else").first).to_be_visible()
    await expect(item).to_have_count(0)
    await expect(b.page.locator("#chat-view")).to_be_hidden()

    # B's status switch.
    await b.page.locator("#status").select_option("busy")
    async with stack.client("router", b_token) as client:
        await eventually(lambda: _status_is(client, "busy"))

    # The supervisor's view: the queue, the operators with status and load, and every open chat.
    await s.page.locator("#view-toggle").click()
    queue = s.page.locator("#queue-rows tr", has_text="support")
    await expect(queue.locator("td").nth(2)).to_have_text("0")
    await expect(queue.locator("td").nth(4)).to_have_text("1")
    holder = s.page.locator("#operator-rows tr", has_text="op0")
    await expect(holder).to_contain_text("online")
    await expect(holder.locator("td").nth(3)).to_have_text("1 / 5")
    await expect(s.page.locator("#operator-rows tr", has_text="op1")).to_contain_text("busy")
    await expect(s.page.locator("#all-chat-rows tr", has_text="Ann Customer")).to_contain_text("op0")
    await s.page.screenshot(path=ARTIFACTS / "supervisor-1280x800.png")
    await s.page.set_viewport_size(PHONE)
    await s.page.screenshot(path=ARTIFACTS / "supervisor-390x844.png")

    # Operators cannot read the overview.
    async with stack.client("router", b_token) as client:
        assert (await client.get("/api/supervisor/overview")).status_code == 403
    # The one error is the browser's own log line of the refused accept's 409 answer.
    [refused] = b.errors
    assert "409 (Conflict)" in refused and "/accept" in refused
    assert s.errors == []
    assert a_id in {o["id"] for o in (await _overview(stack, supervisor_token))["operators"]}


async def test_a_reply_whose_answer_was_lost_is_posted_again_under_its_key_and_stored_once(
    stack: Stack, db: Database, simulator: Simulator, browser: Browser
) -> None:
    await stack.start("ingress", "router", "dispatcher")
    desk = await seed_desk(stack, operators=1, outgoing_url=f"{simulator.url}/thirdparty/acme/outgoing")
    [token] = desk.operators.values()
    a = await sign_in(browser, stack.url("router"), token)
    await customer_writes(stack, desk.secret, customer_message("in-1"))
    await a.page.locator(".chat-item", has_text="Ann Customer").click()
    await a.page.locator('#chat-actions [data-action="accept"]').click()
    await expect(a.page.locator("#reply")).to_be_editable()

    # The first reply reaches the router, but its answer is lost on the way back: the console posts it again.
    keys: list[str] = []

    async def lose_the_first_answer(route: Route) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        keys.append(route.request.headers.get("idempotency-key", ""))
        if len(keys) == 1:
            await route.fetch()  # the router takes it
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await a.page.route("**/api/chats/*/messages", lose_the_first_answer)
    for text in ("First", "Second"):
        await a.page.locator("#reply").fill(text)
        await a.page.keyboard.press("Enter")
        await expect(a.page.locator(".msg.outgoing", has_text=text).locator(".msg-status")).to_have_text("sent")

    stored = [m async for m in db.messages.find({"direction": "outgoing"}).sort("_id", 1)]
    assert [m["text"] for m in stored] == ["First", "Second"]
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2] and all(re.fullmatch(r"[0-9a-f]{32}", k) for k in keys)
    assert [r["body"]["text"] for r in await simulator.requests()] == ["First", "Second"]
    await expect(a.page.locator(".msg.outgoing")).to_have_count(2)
    assert all("/messages" in error for error in a.errors), a.errors  # the browser's line about the lost answer
    await a.context.close()


async def _status_is(client: httpx.AsyncClient, status: str) -> bool:
    return bool((await client.get("/api/operator/status")).json()["status"] == status)


async def _overview(stack: Stack, token: str) -> dict[str, Any]:
    async with stack.client("router", token) as client:
        answer = await client.get("/api/supervisor/overview")
    assert answer.status_code == 200
    overview: dict[str, Any] = answer.json()
    return overview


async def test_files_that_could_run_script_are_downloads_and_the_stream_url_holds_no_token(
    stack: Stack, db: Database, simulator: Simulator, browser: Browser
) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"><script>alert(1)</script></svg>'
    async with simulator.client() as control:
        for name, data, kind in (("evil.svg", svg, "image/svg+xml"), ("cat.png", png(8, 8, (0, 90, 200)), "image/png")):
            stored = await control.put(f"/_sim/files/{name}", content=data, headers={"Content-Type": kind})
            assert stored.status_code == 201
    await stack.start("ingress", "router", "attachments")
    desk = await seed_desk(stack, operators=1)
    token = next(iter(desk.operators.values()))

    context = await browser.new_context(viewport=DESKTOP)
    console = Console(context, await context.new_page())
    requested: list[str] = []
    dialogs: list[str] = []
    console.page.on("console", console.record)
    console.page.on("pageerror", console.crashed)
    console.page.on("request", lambda request: requested.append(request.url))
    console.page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await console.page.goto(f"{stack.url('router')}/")
    await console.page.locator("#token").fill(token)
    await console.page.keyboard.press("Enter")
    await expect(console.page.locator("#live")).to_have_text("Live")

    attachments = [
        {"url": f"{simulator.url}/files/evil.svg", "content_type": "image/svg+xml", "file_name": "evil.svg"},
        {"url": f"{simulator.url}/files/cat.png", "content_type": "image/png", "file_name": "cat.png"},
    ]
    await customer_writes(stack, desk.secret, customer_message("files", type="image", attachments=attachments))
    await console.page.locator(".chat-item").click()
    message = console.page.locator("#message-items .msg").last
    # Only the raster image is shown; the SVG is offered as a download, and saving it runs nothing.
    await expect(message.locator("img.att-image")).to_have_count(1)
    await eventually(lambda: message.locator("img.att-image").evaluate("img => img.complete && img.naturalWidth === 8"))
    link = message.locator("a.att-file")
    await expect(link).to_have_text(re.compile(r"^Download evil\.svg"))
    async with console.page.expect_download() as downloading:
        await link.click()
    download = await downloading.value
    assert download.suggested_filename == "evil.svg"
    assert Path(await download.path()).read_bytes() == svg

    # The stream reconnects after a router restart, each time with a fresh ticket and never with the token.
    await stack.stop("router")
    await stack.start("router")
    await expect(console.page.locator("#live")).to_have_text("Live", timeout=20_000)
    streams = [url for url in requested if "/api/events?" in url]
    tickets = {url.split("ticket=")[1].split("&")[0] for url in streams if "ticket=" in url}
    assert len(streams) >= 2 and len(tickets) == len(streams), streams
    assert not [url for url in requested if token in url]
    assert dialogs == []
    assert [e for e in console.errors if "/api/events" not in e] == []
    await context.close()
