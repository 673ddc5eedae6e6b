"""The console's workplace in headless Chromium: an offered chat on a phone keeps its contact's name readable beside
Accept/Decline/Close; a canned response picked with `/` arrives filled for the chat; a note is written and shown
apart; labels are put on the chat and filter the list; a search hit opens its chat. And (issue 13 items 4, 6 and 7):
a file sent with the attach button and by drag and drop, the template form when WhatsApp's 24-hour window has
closed, and the contact card with its edits and an earlier conversation. Customer content (names, file names,
attributes) shows as text, never markup."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from playwright.async_api import Browser, expect

from omni_contracts import MessageReceived, UnifiedMessage
from omni_runtime.database import Database
from tests.e2e.test_console import DESKTOP, PHONE, browser, customer_writes, sign_in
from tests.support.outbound import publish
from tests.support.seed import customer_message, seed_desk
from tests.support.stack import Simulator, Stack, eventually, signed

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


NUMBER = "5566"
TOKEN = "EAA-simulated-token"
WANDA = "4917612345678"
MARKUP_NAME = "<img src=x onerror=alert(1)>.pdf"
PDF = b"%PDF-1.4\n% invoice\n" + bytes(range(256)) * 4


async def test_files_go_out_by_button_and_drop_and_a_closed_window_offers_the_template_form(
    stack: Stack, db: Database, simulator: Simulator, browser: Browser, tmp_path: Path
) -> None:
    await stack.start("ingress", "router", "dispatcher")
    desk = await seed_desk(stack, operators=1, outgoing_url=f"{simulator.url}/thirdparty/acme/outgoing")
    [token] = desk.operators.values()
    async with stack.admin() as admin:
        settings = {"access_token": TOKEN, "app_secret": "s", "verify_token": "v"}
        channel = await admin.post(
            "/api/admin/channels",
            json={
                "name": "Acme WhatsApp",
                "provider": "whatsapp",
                "source": NUMBER,
                "queue_id": desk.queue_id,
                "settings": settings,
            },
        )
        assert channel.status_code == 201, channel.text
    async with simulator.client() as control:
        account = {"kind": "phone_number", "access_token": TOKEN}
        assert (await control.put(f"/_sim/meta/accounts/{NUMBER}", json=account)).status_code == 200
        window = {"account": NUMBER, "customer": WANDA, "ago_seconds": 25 * 3600}
        assert (await control.post("/_sim/meta/windows", json=window)).status_code == 200
    await customer_writes(stack, desk.secret, customer_message("web-1", text="Please send the invoice"))
    wrote = UnifiedMessage(
        provider="whatsapp",
        channel_id=channel.json()["id"],
        provider_message_id=uuid4().hex,
        sender=WANDA,
        sender_name="<b>Wanda</b>",
        recipient=NUMBER,
        sent_at=datetime.now(UTC) - timedelta(hours=25),
        text="Hello?",
    )
    await publish(stack.settings, MessageReceived(message=wrote))
    await eventually(lambda: _routed(db, 2))
    a = await sign_in(browser, stack.url("router"), token)
    page = a.page

    # The attach button sends the file, the reply box's text its caption; the name shows as text.
    web_chat = page.locator(".chat-item", has_text="Ann Customer")
    await web_chat.click()
    await page.locator('#chat-actions [data-action="accept"]').click()
    await page.locator("#reply").fill("Your invoice")
    await page.locator("#attach-input").set_input_files(
        {"name": MARKUP_NAME, "mimeType": "application/pdf", "buffer": PDF}
    )
    outgoing = page.locator(".msg.outgoing")
    await expect(outgoing).to_have_count(1)
    await expect(outgoing.locator(".msg-text")).to_have_text("Your invoice")
    await expect(outgoing.locator("a.att-file")).to_have_text(f"Download {MARKUP_NAME} (1 KB)")
    await expect(outgoing.locator(".msg-status")).to_have_text("sent")
    assert await page.locator("img[src=x]").count() == 0
    await expect(page.locator("#reply")).to_have_value("")

    # Dropped on the conversation: sent alone.
    await page.locator("#chat-view").evaluate(
        """(pane) => {
            const data = new DataTransfer();
            data.items.add(new File(["a picture's bytes"], "dropped.txt", { type: "text/plain" }));
            pane.dispatchEvent(new DragEvent("dragover", { dataTransfer: data, bubbles: true, cancelable: true }));
            pane.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
        }"""
    )
    await expect(outgoing).to_have_count(2)
    await expect(outgoing.nth(1).locator("a.att-file")).to_contain_text("dropped.txt")
    await expect(outgoing.nth(1).locator(".msg-status")).to_have_text("sent")
    sends = [r for r in await simulator.requests("/thirdparty/acme/outgoing") if r["method"] == "POST"]
    assert [s["body"]["attachments"][0]["file_name"] for s in sends] == [MARKUP_NAME, "dropped.txt"]
    await page.screenshot(path=tmp_path / "files-1280x800.png")

    # WhatsApp, 25 hours after the customer wrote: free text answers template_required and the form opens.
    await page.locator('.filter[data-filter="new"]').click()
    wa_chat = page.locator(".chat-item", has_text="<b>Wanda</b>")
    await expect(wa_chat.locator(".chat-name")).to_have_text("<b>Wanda</b>")
    await wa_chat.click()
    await page.locator("#reply").fill("Are you still there?")
    await page.locator("#reply").press("Enter")
    dialog = page.locator("#template-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#template-why")).to_contain_text("The 24-hour window closed")
    await page.screenshot(path=tmp_path / "template-form-1280x800.png")
    await page.locator("#template-name").fill("order_update")
    await page.locator("#template-parameters").fill("Wanda\nA-17")
    await page.locator("#template-send").click()
    await expect(dialog).to_be_hidden()
    sent = page.locator(".msg.outgoing")
    await expect(sent.locator(".msg-template")).to_have_text("Template order_update (en_US): Wanda, A-17")
    await expect(sent.locator(".msg-status")).to_have_text("sent")
    [graph] = [r for r in await simulator.requests("/graph/") if r["method"] == "POST"]
    assert graph["body"]["type"] == "template" and graph["body"]["template"]["name"] == "order_update"
    await page.screenshot(path=tmp_path / "template-sent-1280x800.png")
    # The browser logs the refused free text (the 422 the form answered); nothing else went wrong.
    assert [e for e in a.errors if "status of 422" not in e] == []
    assert len(a.errors) == 1
    await a.context.close()


async def _routed(db: Database, count: int) -> bool:
    return await db.messages.count_documents({"direction": "incoming", "routed": True}) >= count


async def test_the_contact_card_is_edited_and_shows_an_earlier_conversation(
    stack: Stack, db: Database, browser: Browser, tmp_path: Path
) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=1)
    [token] = desk.operators.values()
    await customer_writes(stack, desk.secret, customer_message("first", text="My first visit"))
    first = await eventually(lambda: db.messages.find_one({"provider_message_id": "first", "routed": True}))
    async with stack.client("router", token) as client:
        assert (await client.post(f"/api/chats/{first['chat_id']}/accept")).status_code == 200
        assert (await client.post(f"/api/chats/{first['chat_id']}/close")).status_code == 200
    await customer_writes(stack, desk.secret, customer_message("second", text="Back again"))
    second = await eventually(lambda: db.messages.find_one({"provider_message_id": "second", "routed": True}))
    assert second["chat_id"] != first["chat_id"]
    a = await sign_in(browser, stack.url("router"), token)
    page = a.page

    await page.locator(".chat-item", has_text="Ann Customer").click()
    await expect(page.locator(".msg.incoming .msg-text")).to_have_text("Back again")
    await page.locator("#contact-open").click()
    dialog = page.locator("#contact-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#contact-name-input")).to_have_value("Ann Customer")
    await expect(page.locator("#contact-identities li")).to_contain_text(["cust-1"])
    chats = page.locator("#contact-chats .contact-chat")
    await expect(chats).to_have_count(2)
    await expect(chats.first).to_contain_text("(this chat)")
    await chats.nth(1).click()  # the earlier, closed conversation, readable in the card
    await expect(page.locator("#transcript .transcript-text")).to_have_text(["My first visit"])

    await page.locator("#contact-name-input").fill("Ann <i>Example</i>")
    await page.locator("#contact-add-attribute").click()
    await page.locator(".attr-row .attr-name").last.fill("email")
    await page.locator(".attr-row .attr-value").last.fill("ann@example.com")
    await page.locator("#contact-save").click()
    await expect(page.locator(".toast", has_text="Contact saved.")).to_be_visible()
    await expect(page.locator("#chat-name")).to_have_text("Ann <i>Example</i>")
    await page.screenshot(path=tmp_path / "contact-card-1280x800.png")
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=tmp_path / "contact-card-390x844.png")
    await page.locator("#contact-close").click()

    async with stack.client("router", token) as client:
        contact_id = (await client.get(f"/api/chats/{second['chat_id']}")).json()["contact_id"]
        contact = (await client.get(f"/api/contacts/{contact_id}")).json()
    assert (contact["name"], contact["attributes"]) == ("Ann <i>Example</i>", {"email": "ann@example.com"})
    assert a.errors == []
    await a.context.close()
