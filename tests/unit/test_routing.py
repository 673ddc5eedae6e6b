"""Routing decisions: the reference's GetOperatorIds contract, the built-in rules, the example rule, chat actions."""

from omni_example_supervisor_rule import to_supervisor
from omni_router.adapters.mongo_chats import chat_from_document, visible
from omni_router.domain.access import Visibility, allowed_actions, may_see, visibility
from omni_router.domain.model import Chat, Operator
from omni_router.domain.views import chat_view
from omni_router.routing import Candidate, holds_capacity, load_rules, operator_ids_for, to_all, to_available


def _op(op_id: str, status: str = "online", *, load: int = 0, max_chats: int = 5, idle: float = 0.0) -> Candidate:
    return Candidate(id=op_id, status=status, role="operator", max_chats=max_chats, active_chats=load, idle_since=idle)


def test_to_all_offers_every_online_operator() -> None:
    candidates = [_op("a"), _op("b", "busy"), _op("c"), _op("d", "offline")]
    assert to_all(candidates) == ["a", "c"]
    assert not holds_capacity(to_all)


def test_to_available_prefers_fewest_active_chats_then_the_longest_idle() -> None:
    candidates = [
        _op("busy", "busy"),
        _op("full", load=5),
        _op("two", load=2, idle=10.0),
        _op("one-recent", load=1, idle=50.0),
        _op("one-idle", load=1, idle=20.0),
        _op("off", "offline"),
    ]
    assert to_available(candidates) == ["one-idle", "one-recent", "two"]
    assert holds_capacity(to_available)
    assert to_available([_op("full", load=2, max_chats=2)]) == []


def test_a_chat_with_an_operator_goes_to_that_operator() -> None:
    assert operator_ids_for("z", to_all, [_op("a")]) == ["z"]
    assert operator_ids_for(None, to_all, [_op("a")]) == ["a"]


def test_the_example_rule_sends_chats_to_the_queues_online_supervisors() -> None:
    supervisor = Candidate(id="s", status="online", role="supervisor", max_chats=5, active_chats=3)
    away = Candidate(id="t", status="offline", role="supervisor", max_chats=5, active_chats=0)
    assert to_supervisor([_op("a"), supervisor, away]) == ["s"]
    assert to_supervisor([_op("a")]) == []
    assert operator_ids_for("a", to_supervisor, [supervisor]) == ["a"]
    assert not holds_capacity(to_supervisor)


def test_rules_are_found_by_code_including_installed_ones() -> None:
    rules = load_rules()
    assert rules["to_all"] is to_all and rules["to_available"] is to_available
    assert rules["to_supervisor"] is to_supervisor


def _chat(
    status: str, offered_to: tuple[str, ...], operator_id: str | None, offered_ever: tuple[str, ...] = ()
) -> Chat:
    return Chat(
        id="c",
        channel_id="ch",
        queue_id="q",
        contact_id="k",
        status=status,
        offered_to=offered_to,
        operator_id=operator_id,
        offered_ever=offered_ever,
    )


def test_visibility_and_actions() -> None:
    operator = Operator(id="a", role="operator")
    supervisor = Operator(id="s", role="supervisor")
    assert visibility(supervisor) == Visibility(None) and visible(visibility(supervisor)) == {}
    assert visibility(operator) == Visibility("a")
    assert visible(visibility(operator)) == {"$or": [{"operator_id": "a"}, {"offered_to": "a"}]}  # as MongoDB reads it
    offered = _chat("new", ("a", "b"), None)
    assert allowed_actions(offered, operator) == ["accept", "decline", "read", "send", "close"]
    assert allowed_actions(offered, supervisor) == ["accept", "read", "send", "close", "transfer"]
    held_by_a = _chat("assigned", ("a",), "a")
    assert allowed_actions(held_by_a, operator) == ["read", "send", "close", "transfer"]
    held_by_b = _chat("assigned", ("b",), "b")
    assert allowed_actions(held_by_b, operator) == []
    assert allowed_actions(held_by_b, supervisor) == ["read", "send", "close", "transfer"]
    assert allowed_actions(_chat("closed", ("b",), "b"), operator) == []
    assert allowed_actions(_chat("closed", ("b",), "b"), supervisor) == []


def test_times_read_the_same_whether_stored_as_dates_or_as_the_stand_ins_text() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 11, 26, 22, 51, 21, 777000, tzinfo=UTC)
    chat = {"_id": "c", "channel_id": "ch", "contact_id": "k", "status": "new", "created_at": when}
    as_text = {**chat, "created_at": "2026-11-26 22:51:21.777000", "last_message_at": "garbage"}
    read, read_as_text = chat_view(chat_from_document(chat)), chat_view(chat_from_document(as_text))
    assert read["created_at"] == read_as_text["created_at"] == "2026-11-26T22:51:21.777000+00:00"
    assert read_as_text["last_message_at"] is None


def test_who_may_see_a_chat_matches_the_visibility_filter() -> None:
    chat = _chat("new", ("a",), None, offered_ever=("a", "b"))
    assert may_see(chat, Operator(id="a")) and not may_see(chat, Operator(id="b"))
    assert may_see(chat, Operator(id="b"), offered_before=True) and not may_see(
        chat, Operator(id="c"), offered_before=True
    )
    assert may_see(_chat("assigned", (), "c"), Operator(id="c"))
    assert may_see(chat, Operator(id="z", role="supervisor"))


def test_a_contact_without_a_profile_is_named_as_the_profiles_service_names_it() -> None:
    from omni_providers import Channel as ProviderChannel
    from omni_providers import fallback_contact_name
    from omni_router.domain.model import Channel, default_contact_name

    mine = Channel(id="ch", name="Shop", provider="acme", source="bot", queue_id="q")
    theirs = ProviderChannel(id="ch", name="Shop", provider="acme", source="bot", queue_id="q", settings={})
    assert default_contact_name(mine, "42") == fallback_contact_name(theirs, "42") == "New contact Shop-42"
