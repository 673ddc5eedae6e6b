"""Reply windows at send time (issue 13 item 7, issue 14 item 6): WhatsApp templates outside 24 hours (Cloud API and
Twilio), Messenger's HUMAN_AGENT tag up to 7 days where the channel has it, the messenger's own refusal when the
window closed after the router took the reply, and inactive channels. Replies are queued as the router queues them."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omni_contracts import Template
from omni_runtime.database import Database
from tests.support.outbound import add_channel, add_chat, queue_reply, settled
from tests.support.stack import Simulator, Stack

pytestmark = pytest.mark.e2e

CUSTOMER = "4917612345678"
TOKEN = "EAA-simulated-token"
NUMBER = "5566"
PAGE = "1122"
ACCOUNT = "AC" + "2" * 32
CONTENT_SID = "HX" + "b" * 32
HOUR = timedelta(hours=1)


async def meta_account(simulator: Simulator, object_id: str, kind: str, customer_wrote: timedelta) -> None:
    """The page or number in the simulator, and when the customer last wrote to it as Meta timed it."""
    async with simulator.client() as control:
        account = {"kind": kind, "access_token": TOKEN}
        assert (await control.put(f"/_sim/meta/accounts/{object_id}", json=account)).status_code == 200
        window = {"account": object_id, "customer": CUSTOMER, "ago_seconds": customer_wrote.total_seconds()}
        assert (await control.post("/_sim/meta/windows", json=window)).status_code == 200


def sends(simulator: Simulator, path: str) -> list[Any]:
    return [r for r in simulator.state.requests if r.path == path and r.method == "POST"]


async def test_whatsapp_outside_the_window_refuses_free_text_and_sends_the_template(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await stack.start("dispatcher")
    settings = {"access_token": TOKEN, "app_secret": "s", "verify_token": "v"}
    channel_id = await add_channel(db, "whatsapp", NUMBER, settings)
    wrote = datetime.now(UTC) - 25 * HOUR
    chat_id = await add_chat(db, channel_id, CUSTOMER, wrote_at=wrote)
    await meta_account(simulator, NUMBER, "phone_number", 25 * HOUR)
    common: dict[str, Any] = {
        "chat_id": chat_id,
        "channel_id": channel_id,
        "provider": "whatsapp",
        "recipient": CUSTOMER,
    }

    text = await settled(db, await queue_reply(db, stack.settings, text="Are you still there?", **common))
    assert text["status"] == "failed"
    closed_at = (wrote + 24 * HOUR).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert text["failure_reason"] == (
        f"outside whatsapp's 24-hour reply window, which closed at {closed_at}: only a template may be sent"
    )
    assert sends(simulator, f"/graph/v21.0/{NUMBER}/messages") == []  # refused here, not by Meta

    template = Template(name="order_update", language="en_US", parameters=("Ann", "A-1001"))
    sent = await settled(db, await queue_reply(db, stack.settings, template=template, **common))
    assert sent["status"] == "sent", sent.get("failure_reason")
    [send] = sends(simulator, f"/graph/v21.0/{NUMBER}/messages")
    assert send.status == 200 and send.answer_message_id == sent["provider_message_id"]
    assert send.body["type"] == "template"
    assert send.body["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Ann"}, {"type": "text", "text": "A-1001"}]}
        ],
    }


async def test_whatsapp_window_closed_since_the_reply_was_taken_is_refused_by_the_messenger_with_131047(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await stack.start("dispatcher")
    settings = {"access_token": TOKEN, "app_secret": "s", "verify_token": "v"}
    channel_id = await add_channel(db, "whatsapp", NUMBER, settings)
    # We last heard of the customer 23 hours ago; by the time the reply reaches Meta, the window has closed.
    chat_id = await add_chat(db, channel_id, CUSTOMER, wrote_at=datetime.now(UTC) - 23 * HOUR)
    await meta_account(simulator, NUMBER, "phone_number", 24 * HOUR + 10 * timedelta(seconds=1))
    reply_id = await queue_reply(
        db, stack.settings, chat_id=chat_id, channel_id=channel_id, provider="whatsapp", recipient=CUSTOMER, text="hi"
    )
    failed = await settled(db, reply_id)
    assert failed["status"] == "failed"
    assert failed["failure_reason"] == (
        "WhatsApp Cloud API refused (Graph error 131047): (#131047) Re-engagement message; "
        "outside the 24-hour reply window"
    )
    [send] = sends(simulator, f"/graph/v21.0/{NUMBER}/messages")
    assert (send.status, send.body["type"]) == (400, "text")  # refused once, not retried


async def test_twilio_outside_the_window_sends_the_content_sid_with_its_variables(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await stack.start("dispatcher")
    channel_id = await add_channel(db, "twilio", "+14155238886", {"account_sid": ACCOUNT, "auth_token": "t0ken"})
    chat_id = await add_chat(db, channel_id, CUSTOMER, wrote_at=datetime.now(UTC) - 30 * HOUR)
    async with simulator.client() as control:
        assert (await control.put(f"/_sim/twilio/accounts/{ACCOUNT}", json={"auth_token": "t0ken"})).status_code == 200
    common: dict[str, Any] = {"chat_id": chat_id, "channel_id": channel_id, "provider": "twilio", "recipient": CUSTOMER}

    text = await settled(db, await queue_reply(db, stack.settings, text="hello again", **common))
    assert text["status"] == "failed" and text["failure_reason"].endswith("only a template may be sent")
    template = Template(name=CONTENT_SID, parameters=("Ann", "Tuesday 10:00"))
    sent = await settled(db, await queue_reply(db, stack.settings, template=template, **common))
    assert sent["status"] == "sent", sent.get("failure_reason")
    [send] = sends(simulator, f"/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    assert send.status == 201 and sent["provider_message_id"] == send.answer_message_id
    assert send.body["ContentSid"] == CONTENT_SID and "Body" not in send.body
    assert json.loads(send.body["ContentVariables"]) == {"1": "Ann", "2": "Tuesday 10:00"}
    async with simulator.client() as control:
        [message] = (await control.get("/_sim/twilio/messages")).json()["items"]
    assert (message["content_sid"], message["to"]) == (CONTENT_SID, f"whatsapp:{CUSTOMER}")


async def test_messenger_between_24_hours_and_7_days_goes_with_human_agent_where_the_channel_has_it(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await stack.start("dispatcher")
    settings = {"page_access_token": TOKEN, "app_secret": "s", "verify_token": "v"}
    tagged = await add_channel(db, "messenger", PAGE, {**settings, "human_agent_tag": True}, name="Tagged")
    untagged = await add_channel(db, "messenger", "3344", settings, name="Untagged")
    wrote = datetime.now(UTC) - 72 * HOUR
    await meta_account(simulator, PAGE, "page", 72 * HOUR)

    chat_id = await add_chat(db, tagged, CUSTOMER, wrote_at=wrote)
    sent = await settled(
        db,
        await queue_reply(
            db, stack.settings, chat_id=chat_id, channel_id=tagged, provider="messenger", recipient=CUSTOMER, text="Hi"
        ),
    )
    assert sent["status"] == "sent", sent.get("failure_reason")
    [send] = sends(simulator, f"/graph/v21.0/{PAGE}/messages")
    assert send.status == 200
    assert (send.body["messaging_type"], send.body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")

    other = await add_chat(db, untagged, CUSTOMER, wrote_at=wrote)
    refused = await settled(
        db,
        await queue_reply(
            db, stack.settings, chat_id=other, channel_id=untagged, provider="messenger", recipient=CUSTOMER, text="Hi"
        ),
    )
    assert refused["status"] == "failed"
    assert refused["failure_reason"].endswith("but this channel does not use it (settings.human_agent_tag)")
    assert sends(simulator, "/graph/v21.0/3344/messages") == []


async def test_messenger_refuses_a_plain_response_after_24_hours_as_meta_does(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await stack.start("dispatcher")
    settings = {"page_access_token": TOKEN, "app_secret": "s", "verify_token": "v"}
    channel_id = await add_channel(db, "messenger", PAGE, settings)
    # Our record says an hour ago (a RESPONSE goes out); Meta has the customer's last message 30 hours back.
    chat_id = await add_chat(db, channel_id, CUSTOMER, wrote_at=datetime.now(UTC) - HOUR)
    await meta_account(simulator, PAGE, "page", 30 * HOUR)
    reply_id = await queue_reply(
        db, stack.settings, chat_id=chat_id, channel_id=channel_id, provider="messenger", recipient=CUSTOMER, text="Hi"
    )
    failed = await settled(db, reply_id)
    assert failed["status"] == "failed"
    assert failed["failure_reason"].startswith(
        "Messenger Send API refused (Graph error 10/2018278): (#10) This message"
    )
    assert failed["failure_reason"].endswith("; outside the 24-hour reply window")
    [send] = sends(simulator, f"/graph/v21.0/{PAGE}/messages")
    assert (send.status, send.body["messaging_type"]) == (400, "RESPONSE")


async def test_an_inactive_channel_refuses_replies_with_the_reason(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await stack.start("dispatcher")
    outgoing_url = f"{simulator.url}/thirdparty/acme/outgoing"
    channel_id = await add_channel(
        db, "acme", "bot-1", {"secret": "s3cret", "outgoing_url": outgoing_url}, name="Old bot", is_active=False
    )
    chat_id = await add_chat(db, channel_id, CUSTOMER, wrote_at=datetime.now(UTC))
    reply_id = await queue_reply(
        db, stack.settings, chat_id=chat_id, channel_id=channel_id, provider="acme", recipient=CUSTOMER, text="hi"
    )
    failed = await settled(db, reply_id)
    assert failed["status"] == "failed"
    assert failed["failure_reason"] == "the channel Old bot is inactive: replies through it are not sent"
    assert simulator.state.select("/thirdparty/") == []
