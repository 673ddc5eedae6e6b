"""`omni`: the admin command over the router's admin API (queues, operators, channels, parked messages, API
tokens, the audit log) and an operator's live notifications."""

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from omni_cli.client import DEFAULT_URL, AdminClient, ApiFailure
from omni_cli.tail import tail as tail_events

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
queues = typer.Typer(help="Chat queues: name, routing rule, completion timeout, operators.", no_args_is_help=True)
operators = typer.Typer(help="Operators and their tokens.", no_args_is_help=True)
channels = typer.Typer(help="Channels: one messenger account each, tied to a queue.", no_args_is_help=True)
parked = typer.Typer(help="Messages that exhausted their retries.", no_args_is_help=True)
tokens = typer.Typer(help="Named API tokens with scopes (admin, reports:read).", no_args_is_help=True)
webhooks = typer.Typer(help="Outbound webhooks: subscriptions and their delivery attempts.", no_args_is_help=True)
app.add_typer(queues, name="queues")
app.add_typer(operators, name="operators")
app.add_typer(channels, name="channels")
app.add_typer(parked, name="parked")
app.add_typer(tokens, name="tokens")
app.add_typer(webhooks, name="webhooks")

JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")]


@dataclass
class Target:
    url: str
    token: str | None


def _out() -> Console:
    # Built per call, so output goes to whatever sys.stdout is now (tests swap it).
    return Console(soft_wrap=False)


def _err() -> Console:
    return Console(stderr=True)


def _fail(text: str) -> None:
    _err().print(f"[red]error:[/] {escape(text)}", highlight=False)


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(envvar="OMNI_ROUTER_URL", help="The router's base URL.")] = DEFAULT_URL,
    token: Annotated[
        str | None, typer.Option(envvar="ADMIN_TOKEN", help="The admin token (ADMIN_TOKEN).", show_default=False)
    ] = None,
) -> None:
    ctx.obj = Target(url, token)


@contextmanager
def admin(ctx: typer.Context) -> Iterator[AdminClient]:
    """The admin API client; an API failure becomes a message on stderr and exit code 1."""
    target: Target = ctx.obj
    if not target.token:
        _fail("no admin token: pass --token or set ADMIN_TOKEN")
        raise typer.Exit(2)
    try:
        with AdminClient(target.url, target.token) as client:
            yield client
    except ApiFailure as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None


Columns = Sequence[tuple[str, Callable[[dict[str, Any]], Any]]]


def _print_items(items: list[dict[str, Any]], as_json: bool, columns: Columns, empty: str) -> None:
    """A table (or JSON lines) of `items`; `empty` goes to stderr when there are none."""
    if as_json:
        for item in items:
            sys.stdout.write(json.dumps(item) + "\n")
        return
    if not items:
        _err().print(empty)
        return
    table = Table()
    for title, _ in columns:
        table.add_column(title, no_wrap=title == "id", overflow="fold")
    for item in items:
        table.add_row(*("" if (v := value(item)) is None else str(v) for _, value in columns))
    _out().print(table)


def _print_created(kind: str, item: dict[str, Any], as_json: bool, fields: Sequence[str]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(item) + "\n")
        return
    _out().print(f"created {kind} [bold]{item['id']}[/]", highlight=False)
    for name in fields:
        value = item.get(name)
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        _out().print(f"  {name}: {shown}", highlight=False, markup=False)


# Queues


@queues.command("create")
def queues_create(
    ctx: typer.Context,
    name: str,
    rule: Annotated[str, typer.Option("--rule", help="to_all, to_available or a custom rule's code.")] = "to_all",
    operator: Annotated[list[str] | None, typer.Option("--operator", help="An operator id (repeat).")] = None,
    completion_timeout: Annotated[
        float | None, typer.Option("--completion-timeout", help="Minutes without messages before a chat closes.")
    ] = None,
    on_operator_offline: Annotated[
        str, typer.Option("--on-operator-offline", help="keep or return the chats of an operator going offline.")
    ] = "keep",
    offer_timeout: Annotated[
        float | None, typer.Option("--offer-timeout", help="Seconds an offer waits for an accept.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a chat queue."""
    body: dict[str, Any] = {
        "name": name,
        "routing_rule": rule,
        "operator_ids": operator or [],
        "on_operator_offline": on_operator_offline,
    }
    if completion_timeout is not None:
        body["completion_timeout_minutes"] = completion_timeout
    if offer_timeout is not None:
        body["offer_timeout_seconds"] = offer_timeout
    with admin(ctx) as client:
        created = client.call("POST", "/api/admin/queues", body)
    _print_created("queue", created, as_json, ("name", "routing_rule", "operator_ids"))


@queues.command("list")
def queues_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List chat queues."""
    with admin(ctx) as client:
        items = client.items("/api/admin/queues")
    _print_items(
        items,
        as_json,
        [
            ("id", lambda q: q["id"]),
            ("name", lambda q: q["name"]),
            ("rule", lambda q: q["routing_rule"]),
            ("timeout (min)", lambda q: q.get("completion_timeout_minutes")),
            ("operators", lambda q: len(q.get("operator_ids") or [])),
        ],
        "no queues",
    )


# Operators


@operators.command("create")
def operators_create(
    ctx: typer.Context,
    name: str,
    max_chats: Annotated[int, typer.Option("--max-chats", help="Chats held at once.")] = 5,
    role: Annotated[str, typer.Option("--role", help="operator or supervisor.")] = "operator",
    as_json: JsonOption = False,
) -> None:
    """Create an operator; prints their token, which cannot be shown again."""
    with admin(ctx) as client:
        created = client.call("POST", "/api/admin/operators", {"name": name, "max_chats": max_chats, "role": role})
    _print_created("operator", created, as_json, ("name", "role", "max_chats", "token"))
    if not as_json:
        _err().print("keep the token now: only its hash is stored, it cannot be shown again")


@operators.command("list")
def operators_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List operators with their status and load."""
    with admin(ctx) as client:
        items = client.items("/api/admin/operators")
    _print_items(
        items,
        as_json,
        [
            ("id", lambda o: o["id"]),
            ("name", lambda o: o["name"]),
            ("role", lambda o: o.get("role")),
            ("status", lambda o: o.get("status")),
            ("chats", lambda o: f"{o.get('active_chats', 0)}/{o.get('max_chats')}"),
        ],
        "no operators",
    )


# Channels


def _settings(pairs: list[str] | None) -> dict[str, str]:
    settings: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected key=value, got {pair.split('=')[0]!r}...", param_hint="--setting")
        settings[key.strip()] = value
    return settings


def _setting_names(channel: dict[str, Any]) -> list[str]:
    # Names only: which settings count as secret is the provider's business, so no value is ever shown.
    return sorted(set(channel.get("settings") or {}) | set(channel.get("secrets_set") or []))


def _registration(channel: dict[str, Any]) -> str:
    registration = channel.get("registration")
    if not registration:
        return "-"
    return f"{'ok' if registration.get('ok') else 'failed'}: {registration.get('detail', '')}"


@channels.command("create")
def channels_create(
    ctx: typer.Context,
    name: str,
    provider: Annotated[str, typer.Option("--provider", help="telegram, messenger, whatsapp, twilio or any name.")],
    source: Annotated[str, typer.Option("--source", help="The channel's id inside the messenger.")],
    queue: Annotated[str, typer.Option("--queue", help="The queue id chats go to.")],
    setting: Annotated[
        list[str] | None, typer.Option("--setting", help="A provider setting as key=value (repeat); never shown.")
    ] = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Create it switched off.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a channel; its settings (tokens, secrets) are sent and never printed back."""
    body = {
        "name": name,
        "provider": provider,
        "source": source,
        "queue_id": queue,
        "settings": _settings(setting),
        "is_active": not inactive,
    }
    with admin(ctx) as client:
        created = client.call("POST", "/api/admin/channels", body)
    shown = {**created, "settings": _setting_names(created)}
    _print_created("channel", shown, as_json, ("name", "provider", "source", "queue_id", "settings"))


@channels.command("list")
def channels_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List channels (setting names only, never their values)."""
    with admin(ctx) as client:
        items = client.items("/api/admin/channels")
    if as_json:
        items = [{**c, "settings": _setting_names(c)} for c in items]
    _print_items(
        items,
        as_json,
        [
            ("id", lambda c: c["id"]),
            ("name", lambda c: c["name"]),
            ("provider", lambda c: c["provider"]),
            ("source", lambda c: c["source"]),
            ("queue", lambda c: c.get("queue_id")),
            ("active", lambda c: "yes" if c.get("is_active", True) else "no"),
            ("registered", _registration),
            ("settings", lambda c: ", ".join(_setting_names(c))),
        ],
        "no channels",
    )


@channels.command("register")
def channels_register(ctx: typer.Context, channel_id: str) -> None:
    """Connect a channel to its messenger (e.g. Telegram setWebhook); exit 1 if the messenger refused."""
    with admin(ctx) as client:
        channel = client.call("POST", f"/api/admin/channels/{channel_id}/register")
    registration = channel.get("registration") or {}
    if not registration.get("ok"):
        _fail(f"registration failed: {registration.get('detail', 'no detail')}")
        raise typer.Exit(1)
    _out().print(f"registered channel {channel_id}: {registration.get('detail', '')}", highlight=False, markup=False)


# Parked messages


@parked.command("list")
def parked_list(
    ctx: typer.Context,
    queue: Annotated[str | None, typer.Option("--queue", help="Only this consumer queue's parking lot.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """List parked messages with why they were parked."""
    with admin(ctx) as client:
        items = client.items("/api/admin/parked", {"queue": queue, "limit": limit} if queue else {"limit": limit})
    _print_items(
        items,
        as_json,
        [
            ("id", lambda p: p["id"]),
            ("queue", lambda p: p["queue"]),
            ("attempts", lambda p: p["attempts"]),
            ("cause", lambda p: p["cause"]),
        ],
        "nothing is parked",
    )


@parked.command("replay")
def parked_replay(
    ctx: typer.Context,
    queue: Annotated[str | None, typer.Option("--queue", help="Only this consumer queue's parking lot.")] = None,
    ids: Annotated[list[str] | None, typer.Option("--id", help="Only this parked message (repeat).")] = None,
) -> None:
    """Send parked messages back to their queue, one at a time; exit 1 if any could not be replayed."""
    with admin(ctx) as client:
        listed = client.items("/api/admin/parked", {"queue": queue, "limit": 1000} if queue else {"limit": 1000})
        targets = [p["id"] for p in listed if ids is None or p["id"] in ids]
        missing = sorted(set(ids or []) - set(targets))
        gone = _replay_each(client, targets) if targets else []
    _out().print(f"replayed {len(targets) - len(gone)} of {len(targets)} parked messages", highlight=False)
    _report_unreplayed(listed, [*missing, *gone], complete=len(listed) < 1000 or ids is not None)


def _report_unreplayed(listed: list[dict[str, Any]], unreplayed: list[str], complete: bool) -> None:
    """What was not replayed, on stderr; exit 1 if any asked-for message was not parked (any more)."""
    if not listed:
        _err().print("nothing is parked")
    for parked_id in unreplayed:
        _err().print(f"[yellow]not parked (any more):[/] {escape(parked_id)}", highlight=False)
    if not complete:
        _err().print("more may be parked than one listing shows: run again")
    if unreplayed:
        raise typer.Exit(1)


def _replay_each(client: AdminClient, targets: list[str]) -> list[str]:
    """Replay one at a time behind a progress bar; the ids no longer parked when their turn came."""
    gone: list[str] = []
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_err()) as progress:
        bar = progress.add_task("replay", total=len(targets))
        for done, parked_id in enumerate(targets):
            try:
                answer = client.call("POST", "/api/admin/parked/replay", {"ids": [parked_id]})
            except ApiFailure:
                _err().print(f"stopped after replaying {done - len(gone)} of {len(targets)}")
                raise
            if answer.get("replayed", 0) < 1:
                gone.append(parked_id)
            progress.advance(bar)
    return gone


@parked.command("show")
def parked_show(ctx: typer.Context, parked_id: str) -> None:
    """One parked message as JSON: its body, why it was parked, and every header (the broker's history too)."""
    with admin(ctx) as client:
        item = client.call("GET", f"/api/admin/parked/{parked_id}")
    sys.stdout.write(json.dumps(item, indent=2) + "\n")


@parked.command("discard")
def parked_discard(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Option("--id", help="This parked message (repeat).")] = None,
    queue: Annotated[str | None, typer.Option("--queue", help="Only this consumer queue's parking lot.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every parked message (of --queue, if given).")] = False,
) -> None:
    """Drop parked messages for good; exit 1 if any of the given ids was not parked."""
    if not ids and not everything:
        _fail("name the messages to drop with --id, or pass --all")
        raise typer.Exit(2)
    body: dict[str, Any] = {"discard": True, "queue": queue}
    if ids:
        body["ids"] = ids
    with admin(ctx) as client:
        answer = client.call("POST", "/api/admin/parked/replay", body)
    discarded = int(answer.get("discarded", 0))
    _out().print(f"discarded {discarded} parked messages", highlight=False)
    if ids and discarded < len(set(ids)):
        _err().print(f"[yellow]{len(set(ids)) - discarded} of the given ids were not parked (any more)[/]")
        raise typer.Exit(1)


# API tokens and the audit log


@tokens.command("create")
def tokens_create(
    ctx: typer.Context,
    name: str,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="admin (everything) or reports:read (repeat); default admin.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a named API token; prints it, and it cannot be shown again."""
    with admin(ctx) as client:
        created = client.call("POST", "/api/admin/tokens", {"name": name, "scopes": scope or ["admin"]})
    _print_created("token", created, as_json, ("name", "scopes", "token"))
    if not as_json:
        _err().print("keep the token now: only its hash is stored, it cannot be shown again")


@tokens.command("list")
def tokens_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List API tokens (names and scopes; never the tokens)."""
    with admin(ctx) as client:
        items = client.items("/api/admin/tokens")
    _print_items(
        items,
        as_json,
        [
            ("id", lambda t: t["id"]),
            ("name", lambda t: t["name"]),
            ("scopes", lambda t: ", ".join(t.get("scopes") or [])),
            ("created", lambda t: t.get("created_at")),
        ],
        "no API tokens",
    )


@tokens.command("revoke")
def tokens_revoke(ctx: typer.Context, token_id: str) -> None:
    """Revoke an API token: every router refuses it from now on."""
    with admin(ctx) as client:
        client.call("DELETE", f"/api/admin/tokens/{token_id}")
    _out().print(f"revoked token {token_id}", highlight=False, markup=False)


def _actor(entry: dict[str, Any]) -> str:
    actor = entry.get("actor") or {}
    name, token_id = actor.get("name"), actor.get("token_id")
    if name is None:
        return "(not identified)"
    return f"{name} ({token_id})" if token_id else name


@app.command("audit")
def audit(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Entries to show.")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Go on from an earlier listing's next cursor.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The audit log of admin writes, newest first: when, who, what, on which item, the answer's status."""
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    with admin(ctx) as client:
        page = client.call("GET", "/api/admin/audit", params=params)
    _print_items(
        page["items"],
        as_json,
        [
            ("at", lambda e: e["at"]),
            ("actor", _actor),
            ("method", lambda e: e["method"]),
            ("path", lambda e: e["path"]),
            ("target", lambda e: e.get("target_id")),
            ("status", lambda e: e["status"]),
        ],
        "no admin writes recorded",
    )
    if page.get("next_cursor"):
        _err().print(f"more: --cursor {page['next_cursor']}", highlight=False, markup=False)


# Outbound webhooks


@webhooks.command("create")
def webhooks_create(
    ctx: typer.Context,
    url: str,
    event: Annotated[list[str], typer.Option("--event", help="chat.created, message.created, ... (repeat).")],
    secret: Annotated[
        str,
        typer.Option(
            envvar="OMNI_WEBHOOK_SECRET", prompt=True, hide_input=True, help="Signs the deliveries (16+ characters)."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Subscribe a URL to events; the secret is sent, never printed."""
    with admin(ctx) as client:
        created = client.call("POST", "/api/admin/webhooks", {"url": url, "events": event, "secret": secret})
    _print_created("webhook", created, as_json, ("url", "events"))


@webhooks.command("list")
def webhooks_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List subscriptions (never their secrets)."""
    with admin(ctx) as client:
        items = client.items("/api/admin/webhooks")
    _print_items(
        items,
        as_json,
        [
            ("id", lambda w: w["id"]),
            ("url", lambda w: w["url"]),
            ("events", lambda w: ", ".join(w.get("events") or [])),
            ("active", lambda w: "yes" if w.get("active", True) else "no"),
        ],
        "no webhooks",
    )


@webhooks.command("delete")
def webhooks_delete(ctx: typer.Context, webhook_id: str) -> None:
    """Delete a subscription: what is still queued for it is not delivered."""
    with admin(ctx) as client:
        client.call("DELETE", f"/api/admin/webhooks/{webhook_id}")
    _out().print(f"deleted webhook {webhook_id}", highlight=False, markup=False)


@webhooks.command("deliveries")
def webhooks_deliveries(
    ctx: typer.Context,
    webhook_id: str,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """Every delivery attempt of a subscription, in the order made."""
    with admin(ctx) as client:
        page = client.call("GET", f"/api/admin/webhooks/{webhook_id}/deliveries", params={"limit": limit})
    _print_items(
        page["items"],
        as_json,
        [
            ("at", lambda a: a.get("at")),
            ("event", lambda a: a["event"]),
            ("event id", lambda a: a["event_id"]),
            ("attempt", lambda a: a["attempt"]),
            ("status", lambda a: a.get("status_code")),
            ("outcome", lambda a: a["outcome"]),
            ("error", lambda a: a.get("error")),
        ],
        "no delivery attempts",
    )


# Notifications


@app.command("tail")
def tail(
    ctx: typer.Context,
    operator_token: Annotated[str, typer.Argument(help="The operator's token (not the admin token).")],
    last_event_id: Annotated[
        str | None, typer.Option("--last-event-id", help="Replay what came after this event id first.")
    ] = None,
) -> None:
    """Print an operator's notifications live, one JSON line each, until Ctrl-C."""
    target: Target = ctx.obj

    def write(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def notice(text: str) -> None:
        _err().print(text, style="dim", highlight=False, markup=False)

    try:
        tail_events(target.url, operator_token, write, notice, last_event_id)
    except ApiFailure as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
