"""Operators' files and replies outside the messenger's window (issue 13 items 6 and 7), as the router's use cases
decide them: written once, run on the fakes here and on MongoDB in tests/integration/test_engine_on_mongo.py."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from pydantic import ValidationError

from omni_contracts import Attachment, MessageOutgoing, Template
from omni_providers import ProviderRegistry, delivery_policy
from omni_router.domain.admin import ChannelSettings
from omni_router.domain.errors import NotFound, TooLarge, Unprocessable
from omni_router.domain.views import iso
from tests.support.fakes import WINDOW_POLICIES
from tests.support.world import World

HOUR = 3600.0


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def outgoing(world: World) -> list[MessageOutgoing]:
    return [e for e in world.events.published if isinstance(e, MessageOutgoing)]


async def test_an_upload_is_the_uploaders_until_sent_then_of_whoever_sees_the_chat(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_all", [5, 5])
    uploads = world.router.uploads
    upload = await uploads.upload(ann, "invoice.pdf", "application/pdf", chunks(b"%PDF", b"-1.4"))
    assert (upload.file_name, upload.content_type, upload.size, upload.uploaded_by) == (
        "invoice.pdf",
        "application/pdf",
        8,
        ann.id,
    )
    described, download = await world.router.desk.file(upload.file_id, await world.fresh(ann))
    assert described.file_name == "invoice.pdf" and download.length == 8
    with pytest.raises(NotFound):  # not bob's, and in no chat bob sees
        await world.router.desk.file(upload.file_id, await world.fresh(bob))
    chat = await world.write(channel)
    with pytest.raises(Unprocessable) as foreign:
        await world.router.replies.send(chat.id, await world.fresh(bob), None, [Attachment(file_id=upload.file_id)])
    assert foreign.value.code == "file_not_found"
    assert outgoing(world) == []

    reply, _ = await world.router.replies.send(
        chat.id, await world.fresh(ann), "your invoice", [Attachment(file_id=upload.file_id)]
    )
    [stored] = reply.attachments
    assert (stored.file_id, stored.file_name, stored.size, stored.status) == (
        upload.file_id,
        "invoice.pdf",
        8,
        "stored",
    )
    [event] = outgoing(world)
    assert [a.file_id for a in event.attachments] == [upload.file_id] and event.attachments[0].url is None
    # Sent in a chat: whoever may see the chat may fetch it (a supervisor here), others still not.
    boss = await world.operator("boss", role="supervisor")
    assert (await world.router.desk.file(upload.file_id, boss))[0].file_id == upload.file_id
    with pytest.raises(NotFound):
        await world.router.desk.file(upload.file_id, await world.fresh(bob))


async def test_an_upload_past_the_limit_keeps_nothing_and_an_unknown_file_id_is_refused(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    uploads = world.router.uploads
    with pytest.raises(TooLarge):
        await uploads.upload(ann, "big.bin", None, chunks(b"x" * uploads.max_bytes, b"x"))
    chat = await world.write(channel)
    for file_id in ("no-such-file", "0123456789abcdef01234567"):
        with pytest.raises(Unprocessable) as unknown:
            await world.router.replies.send(chat.id, await world.fresh(ann), None, [Attachment(file_id=file_id)])
        assert unknown.value.code == "file_not_found"
    assert (await world.chat(chat.id)).status == "new"  # a refused reply accepts nothing
    assert outgoing(world) == []


async def test_whatsapp_free_text_after_24_hours_needs_a_template_which_then_goes(world: World) -> None:
    queue, _, (ann,) = await world.team("to_all", [5])
    channel = await world.channel(queue, source="5566", provider="whatsapp")
    chat = await world.write(channel, sender="4917612345678")
    inside = await world.reply(chat, ann, "within the day")
    assert inside.status == "queued"
    world.clock.advance(24 * HOUR + 1)
    with pytest.raises(Unprocessable) as refused:
        await world.reply(chat, ann, "too late")
    assert refused.value.code == "template_required"
    wrote = await world.router.ports.messages.last_from_customer(chat.id)
    assert wrote is not None and wrote.sent_at is not None
    assert refused.value.fields["window_ends_at"] == iso(wrote.sent_at + timedelta(hours=24))
    assert "only a template may be sent" in refused.value.detail
    template = Template(name="order_update", language="en_US", parameters=("Ann", "A-17"))
    sent, _ = await world.router.replies.send(chat.id, await world.fresh(ann), None, [], template=template)
    assert sent.type == "template" and sent.template == {
        "name": "order_update",
        "language": "en_US",
        "parameters": ["Ann", "A-17"],
    }
    assert outgoing(world)[-1].template == template and outgoing(world)[-1].text is None
    world.clock.advance(0.001)
    await world.write(channel, sender="4917612345678", text="thanks!")  # the customer wrote: the window is open
    assert (await world.reply(chat, ann, "you're welcome")).status == "queued"


async def test_messenger_replies_after_24_hours_go_with_the_tag_only_where_the_page_has_it(world: World) -> None:
    queue, _, (ann,) = await world.team("to_all", [5])
    plain = await world.channel(queue, source="1122", provider="messenger")
    tagged = await world.channel(queue, source="3344", provider="messenger", human_agent_tag=True)
    chat = await world.write(plain, sender="psid-1")
    tagged_chat = await world.write(tagged, sender="psid-2")
    world.clock.advance(2 * 24 * HOUR)
    with pytest.raises(Unprocessable) as closed:
        await world.reply(chat, ann, "late")
    assert closed.value.code == "reply_window_closed" and "HUMAN_AGENT" in closed.value.detail
    assert (await world.reply(tagged_chat, ann, "late but tagged")).status == "queued"
    template = Template(name="x", language="en_US")
    with pytest.raises(Unprocessable) as unsupported:
        await world.router.replies.send(tagged_chat.id, await world.fresh(ann), None, [], template=template)
    assert unsupported.value.code == "templates_unsupported" and "window_ends_at" not in unsupported.value.fields
    world.clock.advance(6 * 24 * HOUR)
    with pytest.raises(Unprocessable) as past_seven_days:
        await world.reply(tagged_chat, ann, "much too late")
    assert past_seven_days.value.code == "reply_window_closed"


async def test_third_party_channels_have_no_window_nor_templates(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    chat = await world.write(channel)
    world.clock.advance(30 * 24 * HOUR)
    assert (await world.reply(chat, ann, "a month later")).status == "queued"
    template = Template(name="x", language="en_US")
    with pytest.raises(Unprocessable) as unsupported:
        await world.router.replies.send(chat.id, await world.fresh(ann), None, [], template=template)
    assert unsupported.value.detail == "acme channels do not send templates"


@pytest.mark.parametrize("provider", sorted(WINDOW_POLICIES))
def test_the_fakes_windows_are_the_providers_own(provider: str) -> None:
    policy = delivery_policy(ProviderRegistry().get(provider))
    fake = WINDOW_POLICIES[provider]
    assert (policy.reply_window, policy.templates, policy.window_tag) == (
        fake.reply_window,
        fake.templates,
        fake.window_tag,
    )
    assert timedelta(hours=24) == fake.reply_window


@pytest.mark.parametrize("flag", ["true", 1, None])
def test_the_human_agent_tag_setting_is_a_json_boolean(flag: object) -> None:
    settings = {"page_access_token": "t", "human_agent_tag": flag}
    with pytest.raises(ValidationError, match="human_agent_tag"):
        ChannelSettings(name="Page", provider="messenger", source="1122", queue_id="q", settings=settings)
    assert ChannelSettings(
        name="Page", provider="messenger", source="1122", queue_id="q", settings={**settings, "human_agent_tag": True}
    ).settings["human_agent_tag"]
