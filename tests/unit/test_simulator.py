"""The provider simulator over real loopback HTTP: recording, signatures, faults, files and pushes to ingress."""

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_providers.signatures import OMNI_SIGNATURE_HEADER, hmac_sha256_signature, verify_hmac_sha256
from omni_runtime.web import HttpServer
from omni_simulator.app import create_app
from omni_simulator.state import SimulatorState

SECRET = "s3cret"


@dataclass
class Simulator:
    state: SimulatorState
    url: str
    client: httpx.AsyncClient


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    state = SimulatorState()
    server = HttpServer(create_app(state), "127.0.0.1", 0)
    await server.start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5.0, trust_env=False) as client:
            yield Simulator(state, url, client)
    finally:
        await server.stop()


def outgoing(message_id: str, text: str = "hello") -> bytes:
    body = {"message_id": message_id, "chat_id": "c1", "recipient": "u1", "sender": "src", "text": text}
    return json.dumps(body).encode()


async def post_outgoing(
    client: httpx.AsyncClient, body: bytes, provider: str = "acme", signature: str | None = None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[OMNI_SIGNATURE_HEADER] = signature
    return await client.post(f"/thirdparty/{provider}/outgoing", content=body, headers=headers)


async def test_healthz(sim: Simulator) -> None:
    response = await sim.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_records_outgoing_requests_and_counts_deliveries_per_message_id(sim: Simulator) -> None:
    answers = [await post_outgoing(sim.client, outgoing(mid)) for mid in ("m1", "m1", "m2")]
    await post_outgoing(sim.client, outgoing("m3"), provider="other")

    assert [a.json() for a in answers] == [{"message_id": "sim-1"}, {"message_id": "sim-2"}, {"message_id": "sim-3"}]
    items = (await sim.client.get("/_sim/requests", params={"provider": "acme"})).json()["items"]
    assert [i["message_id"] for i in items] == ["m1", "m1", "m2"]
    first = items[0]
    assert first["path"] == "/thirdparty/acme/outgoing"
    assert first["status"] == 200
    assert first["body"]["text"] == "hello"
    assert first["raw"] == outgoing("m1").decode()
    assert first["headers"]["content-type"] == "application/json"
    assert first["signature_valid"] is None
    assert (await sim.client.get("/_sim/deliveries", params={"provider": "acme"})).json() == {
        "counts": {"m1": 2, "m2": 1}
    }
    assert sim.state.deliveries() == {"m1": 2, "m2": 1, "m3": 1}

    assert (await sim.client.delete("/_sim/requests")).status_code == 204
    assert (await sim.client.get("/_sim/requests")).json()["items"] == []


async def test_a_repeated_idempotency_key_is_answered_as_before_and_not_delivered_again(sim: Simulator) -> None:
    await sim.client.post("/_sim/faults", json={"path_prefix": "/thirdparty/", "status": 503, "count": 1})
    keyed = {"Idempotency-Key": "r1"}
    failed = await sim.client.post("/thirdparty/acme/outgoing", content=outgoing("r1"), headers=keyed)
    first = await sim.client.post("/thirdparty/acme/outgoing", content=outgoing("r1"), headers=keyed)
    again = await sim.client.post("/thirdparty/acme/outgoing", content=outgoing("r1"), headers=keyed)
    elsewhere = await sim.client.post("/thirdparty/other/outgoing", content=outgoing("r1"), headers=keyed)
    unkeyed = await post_outgoing(sim.client, outgoing("r1"))

    assert failed.status_code == 503  # a failed attempt keeps no key: the next one delivers
    assert first.json() == again.json() == {"message_id": "sim-1"}
    assert elsewhere.json() == {"message_id": "sim-2"} and unkeyed.json() == {"message_id": "sim-3"}
    items = (await sim.client.get("/_sim/requests")).json()["items"]
    assert [(i["status"], i["replayed"]) for i in items] == [
        (503, False),
        (200, False),
        (200, True),
        (200, False),
        (200, False),
    ]
    assert sim.state.deliveries("acme") == {"r1": 2}  # the keyed one once, the unkeyed repeat again
    assert sim.state.replays() == {"r1": 1}


async def test_a_non_json_body_is_recorded_without_message_id(sim: Simulator) -> None:
    response = await post_outgoing(sim.client, b"not json")

    assert response.status_code == 200
    [recorded] = sim.state.requests
    assert (recorded.raw, recorded.body, recorded.message_id) == ("not json", None, None)


async def test_signature_is_checked_against_the_registered_secret(sim: Simulator) -> None:
    put = await sim.client.put("/_sim/secrets/acme", json={"secret": SECRET})
    assert put.status_code == 200
    assert SECRET not in put.text
    body = outgoing("m1")

    await post_outgoing(sim.client, body, signature=hmac_sha256_signature(SECRET, body))
    await post_outgoing(sim.client, body, signature=hmac_sha256_signature("wrong", body))
    await post_outgoing(sim.client, body)
    await post_outgoing(sim.client, body, provider="unregistered", signature=hmac_sha256_signature(SECRET, body))

    assert [r.signature_valid for r in sim.state.requests] == [True, False, False, None]


async def test_a_fault_with_count_two_fails_exactly_two_requests(sim: Simulator) -> None:
    armed = await sim.client.post("/_sim/faults", json={"path_prefix": "/thirdparty/", "status": 500, "count": 2})
    assert armed.status_code == 201

    statuses = [(await post_outgoing(sim.client, outgoing("m1"))).status_code for _ in range(3)]

    assert statuses == [500, 500, 200]
    items = (await sim.client.get("/_sim/requests", params={"path_prefix": "/thirdparty/"})).json()["items"]
    assert [(i["status"], i["message_id"]) for i in items] == [(500, "m1"), (500, "m1"), (200, "m1")]
    assert sim.state.deliveries() == {"m1": 1}
    [fault] = (await sim.client.get("/_sim/faults")).json()["items"]
    assert (fault["id"], fault["count"], fault["remaining"], fault["applied"]) == (armed.json()["id"], 2, 0, 2)


async def test_faults_apply_in_order_only_under_their_prefix_until_cleared(sim: Simulator) -> None:
    await sim.client.post("/_sim/faults", json={"path_prefix": "/thirdparty/other/", "status": 418})
    await sim.client.post("/_sim/faults", json={"path_prefix": "/thirdparty/", "status": 503, "body": "down"})
    await sim.client.post("/_sim/faults", json={"path_prefix": "/thirdparty/", "status": 500})

    other = await post_outgoing(sim.client, outgoing("m1"), provider="other")
    acme = await post_outgoing(sim.client, outgoing("m1"))
    await sim.client.delete("/_sim/faults")
    after = await post_outgoing(sim.client, outgoing("m1"))

    assert other.status_code == 418
    assert (acme.status_code, acme.text, acme.headers["content-type"]) == (503, "down", "text/plain; charset=utf-8")
    assert after.status_code == 200
    assert (await sim.client.get("/_sim/faults")).json()["items"] == []


@pytest.mark.parametrize(("retry_after", "header"), [(7, "7"), (120.0, "120"), (0.3, "0.3")])
async def test_a_429_fault_carries_retry_after(sim: Simulator, retry_after: float, header: str) -> None:
    fault = {"path_prefix": "/thirdparty/acme/", "status": 429, "count": 1, "retry_after": retry_after}
    await sim.client.post("/_sim/faults", json=fault)

    response = await post_outgoing(sim.client, outgoing("m1"))

    assert response.status_code == 429
    assert response.headers["retry-after"] == header
    assert response.json()["error"] == "simulated_fault"


async def test_a_delay_fault_makes_a_short_timeout_client_time_out(sim: Simulator) -> None:
    await sim.client.post("/_sim/faults", json={"path_prefix": "/thirdparty/", "status": 503, "delay": 5, "count": 1})

    with pytest.raises(httpx.ReadTimeout):
        await sim.client.post("/thirdparty/acme/outgoing", content=outgoing("m1"), timeout=httpx.Timeout(5.0, read=0.2))
    retried = await post_outgoing(sim.client, outgoing("m1"))

    assert retried.status_code == 200
    assert [r.status for r in sim.state.requests] == [503, 200]


async def test_files_are_served_with_their_content_type_and_length(sim: Simulator) -> None:
    content = bytes(range(256)) * 4
    put = await sim.client.put("/_sim/files/img/cat.png", content=content, headers={"Content-Type": "image/png"})
    assert put.status_code == 201
    assert put.json() == {
        "name": "img/cat.png",
        "url": f"{sim.url}/files/img/cat.png",
        "size": 1024,
        "content_type": "image/png",
    }

    response = await sim.client.get("/files/img/cat.png")

    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == "1024"
    unknown = await sim.client.get("/files/missing.png")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")


async def test_a_fault_on_files_fails_downloads_for_a_while(sim: Simulator) -> None:
    await sim.client.put("/_sim/files/doc.pdf", content=b"%PDF", headers={"Content-Type": "application/pdf"})
    await sim.client.post("/_sim/faults", json={"path_prefix": "/files/", "status": 404, "count": 2})

    statuses = [(await sim.client.get("/files/doc.pdf")).status_code for _ in range(3)]

    assert statuses == [404, 404, 200]
    items = (await sim.client.get("/_sim/requests", params={"path_prefix": "/files/"})).json()["items"]
    assert [(i["method"], i["status"]) for i in items] == [("GET", 404), ("GET", 404), ("GET", 200)]


@dataclass
class Receiver:
    """A stand-in for ingress that keeps the exact bytes and headers it got."""

    received: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.received.append((request.url.path, await request.body(), dict(request.headers)))
            return JSONResponse({"status": "accepted", "messages": 1})

        return Starlette(routes=[Route("/webhooks/{provider}/receive", receive, methods=["POST"])])


@pytest.fixture
async def ingress() -> AsyncIterator[tuple[str, Receiver]]:
    receiver = Receiver()
    server = HttpServer(receiver.app(), "127.0.0.1", 0)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", receiver
    finally:
        await server.stop()


MESSAGE = {
    "message_id": "p-1",
    "sender": "cust-1",
    "recipient": "src",
    "timestamp": 1_700_000_000,
    "type": "text",
    "text": "Привет",
}


async def test_push_signs_the_exact_bytes_it_sends_to_ingress(sim: Simulator, ingress: tuple[str, Receiver]) -> None:
    url, receiver = ingress
    push = {"ingress_url": url + "/", "provider": "acme", "secret": SECRET, "message": MESSAGE}

    response = await sim.client.post("/_sim/push/thirdparty", json=push)

    assert response.json() == {"status": 200, "body": {"status": "accepted", "messages": 1}}
    [(path, raw, headers)] = receiver.received
    assert path == "/webhooks/acme/receive"
    assert json.loads(raw) == MESSAGE
    assert verify_hmac_sha256(SECRET, raw, headers[OMNI_SIGNATURE_HEADER.lower()])


async def test_push_can_send_a_wrong_signature_or_none(sim: Simulator, ingress: tuple[str, Receiver]) -> None:
    url, receiver = ingress
    base = {"ingress_url": url, "provider": "acme", "message": MESSAGE}

    await sim.client.post("/_sim/push/thirdparty", json={**base, "secret": SECRET, "signature": "sha256=00"})
    await sim.client.post("/_sim/push/thirdparty", json={**base, "omit_signature": True})

    assert [headers.get(OMNI_SIGNATURE_HEADER.lower()) for _, _, headers in receiver.received] == ["sha256=00", None]


async def test_push_to_an_unreachable_ingress_answers_502(sim: Simulator, ingress: tuple[str, Receiver]) -> None:
    push = {"ingress_url": "http://127.0.0.1:1", "provider": "acme", "secret": SECRET, "message": MESSAGE}

    response = await sim.client.post("/_sim/push/thirdparty", json=push)

    assert (response.status_code, response.json()["error"]) == (502, "push_failed")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_sim/faults", {"path_prefix": "/x", "status": 99}),
        ("/_sim/faults", {"path_prefix": "/x"}),
        ("/_sim/faults", {"path_prefix": "x", "status": 500}),
        ("/_sim/push/thirdparty", {"ingress_url": "http://h", "provider": "acme", "message": {}}),
    ],
)
async def test_malformed_control_requests_answer_400(sim: Simulator, path: str, body: dict[str, object]) -> None:
    response = await sim.client.post(path, json=body)

    assert (response.status_code, response.json()["error"]) == (400, "invalid_body")


async def test_reset_forgets_everything(sim: Simulator) -> None:
    await sim.client.put("/_sim/secrets/acme", json={"secret": SECRET})
    await sim.client.put("/_sim/files/a.txt", content=b"a")
    await sim.client.post("/_sim/faults", json={"path_prefix": "/files/", "status": 500})
    await post_outgoing(sim.client, outgoing("m1"))

    assert (await sim.client.post("/_sim/reset")).status_code == 204

    assert (sim.state.requests, sim.state.faults, sim.state.secrets, sim.state.files) == ([], [], {}, {})
    assert (await sim.client.get("/nowhere")).json()["error"] == "not_found"


# --- windows, templates, uploads and receivers (issues 13 and 14) ----------------------------------------------


async def meta_send(sim: Simulator, object_id: str, body: Mapping[str, object]) -> httpx.Response:
    return await sim.client.post(
        f"/graph/v21.0/{object_id}/messages", json=body, headers={"Authorization": "Bearer EAA-token"}
    )


async def set_meta_window(sim: Simulator, account: str, customer: str, ago_seconds: float) -> None:
    body = {"account": account, "customer": customer, "ago_seconds": ago_seconds}
    assert (await sim.client.post("/_sim/meta/windows", json=body)).status_code == 200


async def test_messenger_keeps_the_window_and_human_agent_for_7_days(sim: Simulator) -> None:
    message = {"recipient": {"id": "psid-1"}, "message": {"text": "hi"}}
    response = {**message, "messaging_type": "RESPONSE"}
    tagged = {**message, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    never = await meta_send(sim, "1122", response)
    assert (never.status_code, never.json()["error"]["code"], never.json()["error"]["error_subcode"]) == (
        400,
        10,
        2018278,
    )
    await set_meta_window(sim, "1122", "psid-1", 3 * 86400)
    assert (await meta_send(sim, "1122", response)).status_code == 400
    assert (await meta_send(sim, "1122", tagged)).status_code == 200
    wrong_tag = await meta_send(sim, "1122", {**tagged, "tag": "SOMETHING"})
    assert wrong_tag.status_code == 400 and "Param tag must be one of" in wrong_tag.json()["error"]["message"]
    await set_meta_window(sim, "1122", "psid-1", 8 * 86400)
    assert (await meta_send(sim, "1122", tagged)).json()["error"]["error_subcode"] == 2018278


async def test_whatsapp_refuses_free_text_after_24_hours_with_131047_but_takes_well_formed_templates(
    sim: Simulator,
) -> None:
    base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "4917600000000"}
    await set_meta_window(sim, "5566", "4917600000000", 25 * 3600)
    closed = await meta_send(sim, "5566", {**base, "type": "text", "text": {"body": "hi"}})
    assert (closed.status_code, closed.json()["error"]["code"]) == (400, 131047)
    template = {"name": "hello_world", "language": {"code": "en_US"}}
    assert (await meta_send(sim, "5566", {**base, "type": "template", "template": template})).status_code == 200
    nameless = await meta_send(sim, "5566", {**base, "type": "template", "template": {"language": {"code": "en"}}})
    assert nameless.status_code == 400 and "template['name']" in nameless.json()["error"]["message"]
    bad_parameter = {**template, "components": [{"type": "body", "parameters": [{"type": "text", "text": ""}]}]}
    assert (await meta_send(sim, "5566", {**base, "type": "template", "template": bad_parameter})).status_code == 400


async def test_messenger_refuses_an_attachment_it_cannot_fetch(sim: Simulator) -> None:
    await set_meta_window(sim, "1122", "psid-1", 60)
    attachment = {"type": "file", "payload": {"url": f"{sim.url}/files/missing.pdf", "is_reusable": True}}
    body = {"recipient": {"id": "psid-1"}, "messaging_type": "RESPONSE", "message": {"attachment": attachment}}
    refused = await meta_send(sim, "1122", body)
    assert (refused.status_code, refused.json()["error"]["error_subcode"]) == (400, 2018047)
    [send] = [r for r in sim.state.requests if r.path.endswith("/messages")]
    assert [(f.url, f.status) for f in send.files] == [(f"{sim.url}/files/missing.pdf", 404)]


async def test_twilio_checks_content_sid_and_variables(sim: Simulator) -> None:
    account, token = "AC" + "9" * 32, "t0ken"
    assert (await sim.client.put(f"/_sim/twilio/accounts/{account}", json={"auth_token": token})).status_code == 200
    form = {"To": "whatsapp:+4917600000000", "From": "whatsapp:+14155238886"}

    async def send(**fields: str) -> httpx.Response:
        path = f"/twilio/2010-04-01/Accounts/{account}/Messages.json"
        return await sim.client.post(path, data={**form, **fields}, auth=(account, token))

    assert (await send(Body="hi")).json()["code"] == 63016  # nobody wrote: free text is outside the window
    assert (await send(ContentSid="HX" + "a" * 32, ContentVariables='{"1": "Ann"}')).status_code == 201
    assert (await send(ContentSid="template-name")).json()["code"] == 21655
    assert (await send(ContentSid="HX" + "a" * 32, ContentVariables='{"1": 5}')).json()["code"] == 21656


async def test_telegram_records_uploads_and_refuses_photos_over_10_mb(sim: Simulator) -> None:
    path = "/telegram/bot123:AAH-token/sendPhoto"
    small = await sim.client.post(
        path, data={"chat_id": "7"}, files={"photo": ("a.jpg", b"\xff\xd8jpeg", "image/jpeg")}
    )
    assert small.json()["ok"] is True
    [recorded] = sim.state.requests
    assert recorded.body == {"chat_id": "7", "photo": "<upload a.jpg>"}
    assert [(f.part, f.file_name, f.content_type, f.content) for f in recorded.files] == [
        ("photo", "a.jpg", "image/jpeg", b"\xff\xd8jpeg")
    ]
    assert (await sim.client.get(f"/_sim/requests/{recorded.seq}/files/0")).content == b"\xff\xd8jpeg"
    big = b"\x00" * (10 * 1024 * 1024 + 1)
    refused = await sim.client.post(path, data={"chat_id": "7"}, files={"photo": ("b.jpg", big, "image/jpeg")})
    assert refused.status_code == 400 and refused.json()["ok"] is False


async def test_a_receiver_checks_signatures_and_takes_each_idempotency_key_once(sim: Simulator) -> None:
    assert (await sim.client.put("/_sim/receivers/crm", json={"secret": SECRET})).status_code == 200
    body = b'{"id": "e1", "event": "chat.created", "created_at": "2026-01-01T00:00:00Z", "data": {}}'
    signed = {OMNI_SIGNATURE_HEADER: hmac_sha256_signature(SECRET, body), "Idempotency-Key": "e1"}
    for _ in range(2):
        assert (await sim.client.post("/receivers/crm", content=body, headers=signed)).status_code == 200
    forged = {OMNI_SIGNATURE_HEADER: "sha256=00", "Idempotency-Key": "e2"}
    assert (await sim.client.post("/receivers/crm", content=body, headers=forged)).status_code == 401
    state = (await sim.client.get("/_sim/receivers/crm")).json()
    assert state["signatures_valid"] == [True]
    assert (len(state["events"]), state["replays"], state["attempts"]) == (1, 1, {"e1": 2, "e2": 1})
