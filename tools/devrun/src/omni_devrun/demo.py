"""`--demo`: seeds a queue, an online operator and a third-party channel, then prints curl lines to try them."""

import json
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from omni_devrun.errors import DevrunError

PROVIDER = "demo"
SOURCE = "demo-bot"
QUEUE_NAME = "Demo queue"
OPERATOR_NAME = "Demo operator"
CHANNEL_NAME = "Demo bot"
# Picks the first chat id out of a chat list on stdin, so the reply line needs no jq.
FIRST_ID = "python3 -c " + shlex.quote('import json, sys; print(json.load(sys.stdin)["items"][0]["id"])')


@dataclass(frozen=True)
class DemoSeed:
    queue_id: str
    operator_id: str
    operator_token: str
    channel_id: str
    secret: str


def outgoing_url(simulator_url: str) -> str:
    return f"{simulator_url}/thirdparty/{PROVIDER}/outgoing"


def seed(router_url: str, admin_token: str, simulator_url: str) -> DemoSeed:
    """Create (or, on a database kept from an earlier run, update) the demo queue and channel, with a new operator.

    The operator is new on every run because its token is only ever shown when it is created.
    """
    admin = {"authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=router_url, headers=admin, timeout=10.0) as client:
        operator = _call(client, "POST", "/api/admin/operators", {"name": OPERATOR_NAME, "max_chats": 5})
        queue = _upsert(
            client,
            "queues",
            lambda q: q["name"] == QUEUE_NAME,
            {"name": QUEUE_NAME, "routing_rule": "to_all", "operator_ids": [operator["id"]]},
        )
        secret = secrets.token_urlsafe(24)
        channel = _upsert(
            client,
            "channels",
            lambda c: c["provider"] == PROVIDER and c["source"] == SOURCE,
            {
                "name": CHANNEL_NAME,
                "provider": PROVIDER,
                "source": SOURCE,
                "queue_id": queue["id"],
                "is_active": True,
                "settings": {"secret": secret, "outgoing_url": outgoing_url(simulator_url)},
            },
            patchable=("queue_id", "is_active", "settings"),
        )
        operator_auth = {"authorization": f"Bearer {operator['token']}"}
        _call(client, "PUT", "/api/operator/status", {"status": "online"}, headers=operator_auth)
    return DemoSeed(queue["id"], operator["id"], operator["token"], channel["id"], secret)


def _upsert(
    client: httpx.Client,
    kind: str,
    matches: Callable[[dict[str, Any]], bool],
    body: dict[str, Any],
    patchable: tuple[str, ...] = ("routing_rule", "operator_ids"),
) -> dict[str, Any]:
    existing = next((item for item in _call(client, "GET", f"/api/admin/{kind}")["items"] if matches(item)), None)
    if existing is None:
        return _call(client, "POST", f"/api/admin/{kind}", body)
    changes = {key: body[key] for key in patchable}
    return _call(client, "PATCH", f"/api/admin/{kind}/{existing['id']}", changes)


def _call(
    client: httpx.Client,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    try:
        response = client.request(method, path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DevrunError(f"demo: {method} {path} failed: {exc}") from exc
    if response.is_error:
        raise DevrunError(f"demo: {method} {path} answered {response.status_code}: {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


def curl_lines(
    demo: DemoSeed, *, ingress_url: str, router_url: str, simulator_url: str, now: float | None = None
) -> list[str]:
    """Ready-to-paste commands: a customer writes, the operator lists chats and replies, the simulator shows the reply.

    The customer id is new on every run, so the message opens a new chat that this run's operator is offered.
    """
    stamp = int(time.time() if now is None else now)
    push = {
        "ingress_url": ingress_url,
        "provider": PROVIDER,
        "secret": demo.secret,
        "message": {
            "message_id": f"demo-{stamp}",
            "sender": f"customer-{stamp}",
            "recipient": SOURCE,
            "timestamp": stamp,
            "type": "text",
            "text": "Hello! Where is my order?",
        },
    }
    bearer = shlex.quote(f"authorization: Bearer {demo.operator_token}")
    json_type = shlex.quote("content-type: application/json")
    reply = shlex.quote(json.dumps({"text": "Hi! It left the warehouse this morning."}))
    return [
        "# 1. a customer writes: the simulator signs the webhook and posts it to ingress "
        "(paste twice: the same 200, one message)",
        f"curl -sS -X POST {simulator_url}/_sim/push/thirdparty -H {json_type} -d {shlex.quote(json.dumps(push))}",
        "# 2. the operator's chats",
        f"curl -sS {router_url}/api/chats -H {bearer}",
        "# 3. the operator replies to the newest one (replying to a new chat accepts it)",
        f"CHAT_ID=$(curl -sS {router_url}/api/chats -H {bearer} | {FIRST_ID}); "
        f"curl -sS -X POST {router_url}/api/chats/$CHAT_ID/messages -H {bearer} -H {json_type} -d {reply}",
        "# 4. what the simulator received (the reply, posted to the channel's outgoing_url)",
        f"curl -sS {simulator_url}/_sim/requests",
    ]
