"""The console's workplace in headless Chromium: an offered chat on a phone keeps its contact's name readable beside
Accept/Decline/Close; a canned response picked with `/` arrives filled for the chat; a note is written and shown
apart; labels are put on the chat and filter the list; a search hit opens its chat."""

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from omni_runtime.database import Database
from tests.e2e.test_console import DESKTOP, PHONE, browser, sign_in
from tests.support.seed import customer_message, seed_desk
from tests.support.stack import Stack, eventually, signed

pytestmark = pytest.mark.e2e

__all__ = ["browser"]  # the fixture, shared with test_console.py


async def test_offered_chat_on_a_phone_canned_response_note_labels_and_search(
    stack: Stack, db: Database, browser: Browser, tmp_path: Path
) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=1)
    [(_op, token)] = desk.operators.items()
    async with stack.admin() as admin:
        for name, color in (("billing", "#d92d20"), ("vip", "#1570ef")):
            assert (await admin.post("/api/admin/labels", json={"name": name, "color": color})).status_code == 201
        greeting = {"shortcut": "hi", "text": "Hello {{contact.name}}, this is {{operator.name}}."}
        assert (await admin.post("/api/admin/canned-responses", json=greeting)).status_code == 201
        other = {"shortcut": "bye", "text": "Goodbye!"}
        assert (await admin.post("/api/admin/canned-responses", json=other)).status_code == 201
    raw, headers = signed(customer_message("in-1", text="My parcel is late"), desk.secret)
    async with stack.client("ingress") as ingress:
        assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200
    stored = await eventually(lambda: db.messages.find_one({"provider_message_id": "in-1", "routed": True}))
    chat_id = stored["chat_id"]

    console = await sign_in(browser, stack.url("router"), token)
    page = console.page
    item = page.locator(f'.chat-item[data-chat-id="{chat_id}"]')

    # On a phone, the offered chat's header: the name keeps its width, the buttons wrap under it.
    await page.set_viewport_size(PHONE)
    await item.click()
    await expect(page.locator('#chat-actions [data-action="accept"]')).to_be_visible()
    title = await page.locator("#chat-name").bounding_box()
    actions = await page.locator("#chat-actions").bounding_box()
    assert title is not None and actions is not None
    assert title["width"] > 150, title
    assert actions["y"] >= title["y"] + title["height"] - 1, (title, actions)
    await expect(page.locator("#chat-name")).to_have_text("Ann Customer")
    assert await page.locator("#chat-name").evaluate("e => e.scrollWidth <= e.clientWidth")  # not cut short
    await page.screenshot(path=tmp_path / "offered-390x844.png")
    await page.set_viewport_size(DESKTOP)
    await page.locator('#chat-actions [data-action="accept"]').click()
    await expect(page.locator('#chat-actions [data-action="close"]')).to_be_visible()

    # `/` opens the picker, filtered as one types; Enter inserts the text the server filled for this chat.
    reply = page.locator("#reply")
    await reply.click()
    await page.keyboard.type("/h")
    picker = page.locator("#canned-picker")
    await expect(picker.locator(".canned-item")).to_have_count(1)
    await expect(picker.locator(".canned-shortcut")).to_have_text("/hi")
    await page.screenshot(path=tmp_path / "canned-picker-1280x800.png")
    await page.keyboard.press("Enter")
    await expect(reply).to_have_value("Hello Ann Customer, this is op0.")
    await expect(picker).to_be_hidden()
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg.outgoing .msg-text")).to_have_text("Hello Ann Customer, this is op0.")

    # A note: the Note switch, Enter saves it; it shows apart and is stored as internal.
    await page.locator("#note-mode").click()
    await page.keyboard.type("Customer <b>called</b> twice")
    await page.keyboard.press("Enter")
    note = page.locator(".msg.note")
    await expect(note.locator(".msg-text")).to_have_text("Customer <b>called</b> twice")
    await expect(note.locator(".note-head")).to_have_text("Internal note · me")
    await expect(page.locator("#note-mode")).to_have_attribute("aria-pressed", "false")
    stored_note = await eventually(lambda: db.messages.find_one({"chat_id": chat_id, "direction": "internal"}))
    assert stored_note["type"] == "note"

    # Labels: put on the chat in its header, shown in the list, and the list filtered by them.
    await page.locator("#edit-labels").click()
    await page.locator('#label-editor input[value="billing"]').check()
    await page.locator('#label-editor button[type="submit"]').click()
    await expect(page.locator("#chat-labels .label-chip")).to_have_text(["billing"])
    await page.locator('.filter[data-filter="mine"]').click()
    await expect(item.locator(".label-chip")).to_have_text(["billing"])
    await page.locator("#label-filter").select_option("vip")
    await expect(item).to_have_count(0)
    await page.locator("#label-filter").select_option("billing")
    await expect(item).to_have_count(1)
    await page.screenshot(path=tmp_path / "note-labels-1280x800.png")

    # Search: a hit opens its chat.
    await page.locator('.filter[data-filter="new"]').click()
    await page.locator("#search").fill("parcel")
    await page.locator("#search").press("Enter")
    hit = page.locator(f'.search-hit[data-chat-id="{chat_id}"]')
    await expect(hit.first).to_contain_text("My parcel is late")
    await page.screenshot(path=tmp_path / "search-1280x800.png")
    await hit.first.click()
    await expect(page.locator('.filter[data-filter="mine"]')).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#chat-name")).to_have_text("Ann Customer")
    assert console.errors == []
    await console.context.close()
