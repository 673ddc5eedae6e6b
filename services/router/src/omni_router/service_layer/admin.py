"""The admin's use cases: queues, operators and channels created, changed and deleted (routing follows each
change), channels registered with their messengers, and the parking lots."""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import fields, replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from omni_router.domain.access import new_token, token_hash
from omni_router.domain.admin import (
    PATCH_MODELS,
    PATCHABLE,
    AdminKind,
    ChannelSettings,
    OperatorSettings,
    QueueSettings,
)
from omni_router.domain.errors import Conflict, Invalid, InvalidBody, NotFound
from omni_router.domain.model import Channel, Operator, Queue
from omni_router.service_layer.engine import Engine
from omni_router.service_layer.ports import (
    Channels,
    Clock,
    Messengers,
    OperatorQueues,
    Operators,
    ParkingLots,
    Queues,
    RoutingSettings,
)

Item = Queue | Operator | Channel
LIST_LIMIT = 1000


def _item_fields(item: Item) -> dict[str, Any]:
    return {f.name: getattr(item, f.name) for f in fields(item)}


def _stored(name: str, value: Any) -> Any:
    """A checked field as the typed value holds it."""
    return tuple(value) if name in ("operator_ids", "actions") and value is not None else value


class Admin:
    def __init__(
        self,
        *,
        queues: Queues,
        operators: Operators,
        channels: Channels,
        settings: RoutingSettings,
        operator_queues: OperatorQueues,
        messengers: Messengers,
        parking: ParkingLots,
        engine: Engine,
        rules: Collection[str],
        clock: Clock,
    ) -> None:
        self._queues = queues
        self._operators = operators
        self._channels = channels
        self._settings = settings
        self._operator_queues = operator_queues
        self._messengers = messengers
        self.parking = parking
        self._engine = engine
        self._rules = rules
        self._clock = clock

    def now(self) -> datetime:
        return self._clock.now()

    # Creating ----------------------------------------------------------------------------------------------------

    async def create_queue(self, body: QueueSettings) -> Queue:
        await self._check_queue(body.routing_rule, body.operator_ids)
        queue = Queue(
            id=self._clock.new_id(),
            name=body.name,
            routing_rule=body.routing_rule,
            completion_timeout_minutes=body.completion_timeout_minutes,
            operator_ids=tuple(body.operator_ids),
            on_operator_offline=body.on_operator_offline,
            offer_timeout_seconds=body.offer_timeout_seconds,
            created_at=self._clock.now(),
            actions=None if body.actions is None else tuple(dict.fromkeys(body.actions)),
            **body.model_dump(mode="json", include={"business_hours", "greeting_text", "out_of_hours_text", "csat"}),
        )
        await self._queues.add(queue)
        return queue

    async def create_operator(self, body: OperatorSettings) -> tuple[Operator, str]:
        """The operator, and their token (answered this once: only its hash is stored)."""
        token = new_token()
        operator = Operator(
            id=self._clock.new_id(),
            name=body.name,
            max_chats=body.max_chats,
            role=body.role,
            status="offline",
            token_hash=token_hash(token),
            created_at=self._clock.now(),
        )
        # The queue first: no notification can ever be published for an operator without one.
        await self._operator_queues.declare(operator.id)
        await self._operators.add(operator)
        return operator, token

    async def create_channel(self, body: ChannelSettings) -> Channel:
        self._messengers.check_channel(body.provider, body.settings)
        await self._check_channel_queue(body.queue_id)
        channel = Channel(
            id=self._clock.new_id(),
            name=body.name,
            provider=body.provider,
            source=body.source,
            queue_id=body.queue_id,
            settings=body.settings,
            is_active=body.is_active,
            created_at=self._clock.now(),
        )
        if not await self._channels.add(channel):
            raise Conflict("duplicate_channel", f"a {body.provider} channel with this source exists")
        return channel

    async def _check_queue(self, rule: str | None, operator_ids: Sequence[str] | None) -> None:
        if rule is not None and rule not in self._rules:
            raise Invalid("invalid_body", f"routing_rule {rule!r} is unknown; known: {sorted(self._rules)}")
        if operator_ids:
            found = {op.id for op in await self._operators.many(operator_ids)}
            missing = sorted(set(operator_ids) - found)
            if missing:
                raise Invalid("invalid_body", f"unknown operator ids: {', '.join(missing)}")

    async def _check_channel_queue(self, queue_id: str) -> None:
        if await self._queues.get(queue_id) is None:
            raise Invalid("invalid_body", f"unknown queue_id {queue_id}")

    # Reading, changing, deleting ---------------------------------------------------------------------------------

    async def list(self, kind: AdminKind) -> Sequence[Item]:
        match kind:
            case "queues":
                return await self._queues.all(LIST_LIMIT)
            case "operators":
                return await self._operators.all(LIST_LIMIT)
            case "channels":
                return await self._channels.all(LIST_LIMIT)

    async def get(self, kind: AdminKind, item_id: str) -> Item:
        match kind:
            case "queues":
                found: Item | None = await self._queues.get(item_id)
            case "operators":
                found = await self._operators.get(item_id)
            case "channels":
                found = await self._channels.get(item_id)
        if found is None:
            raise NotFound("not_found", f"no {kind[:-1]} {item_id}")
        return found

    async def change(self, kind: AdminKind, item_id: str, changes: Any) -> Item:
        """A PATCH: checked as creation checks it, applied, and routing follows."""
        current = await self.get(kind, item_id)
        checked = await self._checked(kind, current, changes)
        updated = replace(current, **{name: _stored(name, value) for name, value in checked.items()})
        await self._save(updated, list(checked))
        updated = await self.get(kind, item_id)
        await self._changed(current, updated)
        return updated

    async def _checked(self, kind: AdminKind, current: Item, changes: Any) -> dict[str, Any]:
        """The change applied to `current`, checked with the model and the checks creation uses: the changed fields."""
        changes = _change_of(kind, current, changes)
        model = PATCH_MODELS[kind]
        stored = {k: v for k, v in _item_fields(current).items() if k in model.model_fields and v is not None}
        checked = _validated(model, stored | changes)
        if isinstance(checked, QueueSettings):
            await self._check_queue(
                checked.routing_rule if "routing_rule" in changes else None,
                checked.operator_ids if "operator_ids" in changes else None,
            )
        elif isinstance(checked, ChannelSettings):
            await self._check_changed_channel(checked, changes)
        # As JSON: nested settings (business hours' dates) stored as the API shows them.
        return checked.model_dump(mode="json", include=set(changes))

    async def _check_changed_channel(self, checked: ChannelSettings, changes: dict[str, Any]) -> None:
        if "settings" in changes:
            self._messengers.check_channel(checked.provider, checked.settings)
        if "queue_id" in changes:
            await self._check_channel_queue(checked.queue_id)

    async def _save(self, item: Item, names: Sequence[str]) -> None:
        match item:
            case Queue():
                await self._queues.save(item, names)
            case Operator():
                await self._operators.save(item, names)
            case Channel():
                await self._channels.save(item, names)

    async def _changed(self, before: Item, after: Item) -> None:
        """Routing follows the admin: an operator's status or capacity, a queue's operators or rule."""
        self._settings.forget()
        if isinstance(before, Operator) and isinstance(after, Operator):
            if after.status == "offline" and before.status != "offline":
                await self._engine.operator_offline([after.id])
            elif after.status == "online":
                await self._engine.operator_online(after.id)
        elif isinstance(after, Queue):
            await self._engine.dispatch([after.id])

    async def delete(self, kind: AdminKind, item_id: str) -> None:
        current = await self.get(kind, item_id)
        match current:
            case Operator():
                # Leaving for good is going offline first: offers move on, chats return where queues say so.
                await self._operators.set_status(item_id, "offline")
                await self._changed(current, replace(current, status="offline"))
                await self._operators.delete(item_id)
                await self._queues.drop_operator(item_id)
                await self._operator_queues.delete(item_id)
            case Queue():
                await self._queues.delete(item_id)
            case Channel():
                await self._channels.delete(item_id)
        self._settings.forget()

    async def register(self, channel_id: str) -> Channel:
        """The reference's Register: connect the channel to its messenger and record the outcome on it."""
        channel = await self.get("channels", channel_id)
        assert isinstance(channel, Channel)
        outcome = await self._messengers.register(channel)
        registration: Mapping[str, Any] = {
            "ok": outcome.ok,
            "detail": outcome.detail,
            "at": self._clock.now().isoformat(),
        }
        await self._channels.record_registration(channel_id, registration, outcome.settings_update)
        self._settings.forget()
        registered = await self.get("channels", channel_id)
        assert isinstance(registered, Channel)
        return registered


def _change_of(kind: AdminKind, current: Item, changes: Any) -> dict[str, Any]:
    """A PATCH body's fields, if it may change them; a channel's settings merged over the stored ones (secrets are
    write-only: the stored ones the change does not name are kept)."""
    if not isinstance(changes, dict) or not changes:
        raise Invalid("invalid_body", "send an object with the fields to change")
    unknown = sorted(set(changes) - PATCHABLE[kind])
    if unknown:
        raise Invalid("invalid_body", f"cannot change: {', '.join(unknown)}")
    if isinstance(current, Channel) and isinstance(changes.get("settings"), dict):
        return {**changes, "settings": {**current.settings, **changes["settings"]}}
    return changes


def _validated(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidBody(exc) from None
