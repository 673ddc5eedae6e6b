"""The `omni` admin command against a running router: create and list, secrets never shown, API errors shown
with exit code 1, parked replies listed and replayed, and an operator's notifications tailed live."""

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from omni_cli.main import app
from omni_runtime.database import Database, Document
from tests.support.seed import customer_message, seed_desk
from tests.support.stack import ADMIN_TOKEN, Simulator, Stack, eventually, signed

pytestmark = pytest.mark.e2e

SECRET = "TOP-SECRET-value-1"


async def omni(stack: Stack, *args: str, token: str | None = ADMIN_TOKEN, url: str | None = None) -> Result:
    """`omni ARGS` in a thread (the services answer on this loop meanwhile)."""
    env = {"OMNI_ROUTER_URL": url or stack.url("router"), "ADMIN_TOKEN": token, "COLUMNS": "200"}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


def _ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.output)
    return result.stdout


async def test_create_and_list_queues_operators_and_channels_without_showing_secrets(
    stack: Stack, db: Database
) -> None:
    await stack.start("router")
    ann = json.loads(_ok(await omni(stack, "operators", "create", "Ann", "--max-chats", "3", "--json")))
    bob = await omni(stack, "operators", "create", "Bob", "--role", "supervisor")
    assert "token: " in _ok(bob) and "cannot be shown again" in bob.stderr
    async with stack.client("router", ann["token"]) as client:
        assert (await client.get("/api/operator/status")).status_code == 200

    queue = await omni(stack, "queues", "create", "support", "--rule", "to_available", "--operator", ann["id"])
    queue_id = _ok(queue).split()[2]
    channel = await omni(
        stack,
        *("channels", "create", "Acme chat", "--provider", "acme", "--source", "bot-1", "--queue", queue_id),
        *("--setting", f"secret={SECRET}", "--setting", "outgoing_url=http://127.0.0.1:9/out"),
    )
    channel_id = _ok(channel).split()[2]
    stored = await db.channels.find_one({"_id": channel_id})
    assert stored is not None and stored["settings"]["secret"] == SECRET and stored["queue_id"] == queue_id

    queues = _ok(await omni(stack, "queues", "list"))
    assert queue_id in queues and "to_available" in queues
    operators = [json.loads(line) for line in _ok(await omni(stack, "operators", "list", "--json")).splitlines()]
    assert [(o["name"], o["role"]) for o in operators] == [("Ann", "operator"), ("Bob", "supervisor")]
    channels_table = await omni(stack, "channels", "list")
    channels_json = await omni(stack, "channels", "list", "--json")
    assert channel_id in _ok(channels_table) and "outgoing_url, secret" in channels_table.stdout
    assert json.loads(_ok(channels_json))["settings"] == ["outgoing_url", "secret"]
    registered = await omni(stack, "channels", "register", channel_id)
    assert "need no registration" in _ok(registered)
    for result in (channel, channels_table, channels_json, registered):
        assert SECRET not in result.output


async def test_failures_show_the_api_error_and_exit_non_zero(stack: Stack) -> None:
    await stack.start("router")
    unknown_rule = await omni(stack, "queues", "create", "support", "--rule", "nope")
    assert unknown_rule.exit_code == 1
    assert "invalid_body: routing_rule 'nope' is unknown" in unknown_rule.stderr and "(HTTP 400)" in unknown_rule.stderr
    missing = await omni(stack, "channels", "register", "no-such-channel")
    assert missing.exit_code == 1 and "not_found: no channel no-such-channel (HTTP 404)" in missing.stderr
    wrong_token = await omni(stack, "queues", "list", token="wrong")
    assert wrong_token.exit_code == 1 and "unauthorized: unknown or revoked token (HTTP 401)" in wrong_token.stderr
    bad_tail = await omni(stack, "tail", "not-an-operator-token")
    assert bad_tail.exit_code == 1 and "unauthorized" in bad_tail.stderr
    no_token = await omni(stack, "queues", "list", token=None)
    assert no_token.exit_code == 2 and "no admin token" in no_token.stderr
    bad_setting = await omni(
        stack, "channels", "create", "x", "--provider", "acme", "--source", "s", "--queue", "q", "--setting", "novalue"
    )
    assert bad_setting.exit_code == 2 and "key=value" in bad_setting.output
    down = await omni(stack, "queues", "list", url="http://127.0.0.1:9")
    assert down.exit_code == 1 and "unreachable: cannot reach the router at http://127.0.0.1:9" in down.stderr


async def _parked_reply(stack: Stack, db: Database, simulator: Simulator) -> str:
    """A reply the messenger refuses with 503 until the dispatcher parks it; answers the reply's id."""
    await stack.start("ingress", "router", "dispatcher")
    desk = await seed_desk(stack, operators=1, outgoing_url=f"{simulator.url}/thirdparty/acme/outgoing")
    raw, headers = signed(customer_message("in-1"), desk.secret)
    async with stack.client("ingress") as ingress:
        assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200
    message = await eventually(lambda: db.messages.find_one({"provider_message_id": "in-1", "routed": True}))
    await simulator.fault(path_prefix="/thirdparty/", status=503, count=None)
    async with stack.client("router", next(iter(desk.operators.values()))) as client:
        assert (await client.post(f"/api/chats/{message['chat_id']}/accept")).status_code == 200
        reply = await client.post(f"/api/chats/{message['chat_id']}/messages", json={"text": "into the void"})
    reply_id: str = reply.json()["id"]

    async def failed() -> Document | None:
        return await db.messages.find_one({"_id": reply_id, "status": "failed"})

    await eventually(failed, timeout=30)
    return reply_id


async def test_parked_list_and_replay_with_a_progress_bar(stack: Stack, db: Database, simulator: Simulator) -> None:
    reply_id = await _parked_reply(stack, db, simulator)
    listed = _ok(await omni(stack, "parked", "list", "--queue", "dispatcher.outgoing"))
    [row] = [line for line in listed.splitlines() if "dispatcher.outgoing" in line]
    parked_id = row.split("│")[1].strip()
    assert [cell.strip() for cell in row.split("│")[2:4]] == ["dispatcher.outgoing", "4"] and "503" in row

    wrong = await omni(stack, "parked", "replay", "--id", "not-parked")
    assert wrong.exit_code == 1 and "replayed 0 of 0" in wrong.stdout and "not-parked" in wrong.stderr
    async with simulator.client() as control:
        await control.delete("/_sim/faults")
    replay = await omni(stack, "parked", "replay", "--id", parked_id)
    assert "replayed 1 of 1" in _ok(replay) and "1/1" in replay.stderr  # the bar, finished
    await eventually(lambda: db.messages.find_one({"_id": reply_id, "status": "sent"}), timeout=15)
    assert "dispatcher.outgoing" not in _ok(await omni(stack, "parked", "list"))


async def test_tail_prints_each_notification_as_one_json_line_until_interrupted(stack: Stack) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=1)
    operator_id, token = next(iter(desk.operators.items()))
    omni_bin = Path(sys.executable).with_name("omni")
    tail = await asyncio.create_subprocess_exec(
        *(str(omni_bin), "--url", stack.url("router"), "tail", token),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert tail.stdout is not None and tail.stderr is not None
    try:
        assert b"connected" in await asyncio.wait_for(tail.stderr.readline(), 20)
        raw, headers = signed(customer_message("m-1"), desk.secret)
        async with stack.client("ingress") as ingress:
            assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200
        note = json.loads(await asyncio.wait_for(tail.stdout.readline(), 5))
        assert (note["event"], note["operator_id"]) == ("chat.offered", operator_id)
        tail.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(tail.wait(), 5) == 0
    finally:
        if tail.returncode is None:
            tail.kill()
            await tail.wait()


async def test_tokens_are_created_listed_and_revoked_and_the_audit_log_shown(stack: Stack) -> None:
    await stack.start("router")
    created = await omni(stack, "tokens", "create", "bi", "--scope", "reports:read")
    assert "token: " in _ok(created) and "cannot be shown again" in created.stderr
    token_id = _ok(created).split()[2]
    secret = _ok(created).split("token: ")[1].split()[0]
    made = json.loads(_ok(await omni(stack, "tokens", "create", "ops", "--json")))
    assert made["scopes"] == ["admin"]
    listed = _ok(await omni(stack, "tokens", "list"))
    assert token_id in listed and "reports:read" in listed and secret not in listed and made["token"] not in listed
    # The ops token works as the CLI's token; the reports one may not write.
    assert (await omni(stack, "queues", "create", "support", token=made["token"])).exit_code == 0
    refused = await omni(stack, "queues", "create", "sales", token=secret)
    assert refused.exit_code == 1 and "insufficient_scope" in refused.stderr and "(HTTP 403)" in refused.stderr
    assert "revoked token" in _ok(await omni(stack, "tokens", "revoke", made["id"]))
    gone = await omni(stack, "queues", "list", token=made["token"])
    assert gone.exit_code == 1 and "(HTTP 401)" in gone.stderr
    again = await omni(stack, "tokens", "revoke", made["id"])
    assert again.exit_code == 1 and "(HTTP 404)" in again.stderr

    entries = [json.loads(line) for line in _ok(await omni(stack, "audit", "--json")).splitlines()]
    assert [(e["method"], e["path"], e["actor"]["name"], e["status"]) for e in entries[:4]] == [
        ("DELETE", f"/api/admin/tokens/{made['id']}", "ADMIN_TOKEN", 404),
        ("DELETE", f"/api/admin/tokens/{made['id']}", "ADMIN_TOKEN", 204),
        ("POST", "/api/admin/queues", "bi", 403),
        ("POST", "/api/admin/queues", "ops", 201),
    ]
    table = await omni(stack, "audit", "--limit", "2")
    assert "ADMIN_TOKEN" in _ok(table) and "more: --cursor " in table.stderr
    for result in (listed, table.stdout):
        assert secret not in result and made["token"] not in result


async def test_webhooks_are_subscribed_listed_and_deleted_without_showing_their_secret(
    stack: Stack, simulator: Simulator
) -> None:
    await stack.start("router")
    url = f"{simulator.url}/receivers/crm"
    made = await omni(
        stack,
        "webhooks",
        "create",
        url,
        "--event",
        "chat.created",
        "--event",
        "chat.closed",
        "--secret",
        "whsec-0123456789abcdef",
    )
    webhook_id = _ok(made).split()[2]
    assert "chat.created, chat.closed" in made.stdout
    listed = _ok(await omni(stack, "webhooks", "list"))
    assert webhook_id in listed and url in listed
    assert "no delivery attempts" in (await omni(stack, "webhooks", "deliveries", webhook_id)).stderr
    refused = await omni(stack, "webhooks", "create", url, "--event", "chat.opened", "--secret", "x" * 16)
    assert refused.exit_code == 1 and "invalid_body" in refused.stderr
    assert "deleted webhook" in _ok(await omni(stack, "webhooks", "delete", webhook_id))
    for result in (made.output, listed):
        assert "whsec-0123456789abcdef" not in result
