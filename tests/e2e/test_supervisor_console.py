"""The console's supervisor view (console/supervisor.js) in headless Chromium: the reports drawn as SVG charts with
a period picker, a queue's business hours edited (a refusal shown, then saved), and a customer's rating shown."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from omni_runtime.database import Database
from tests.e2e.test_console import browser, sign_in  # noqa: F401  (the fixture, shared)
from tests.support.seed import customer_message, seed_desk
from tests.support.stack import Simulator, Stack, eventually, signed

pytestmark = pytest.mark.e2e


async def test_supervisor_sees_charts_edits_business_hours_and_sees_ratings(
    stack: Stack,
    db: Database,
    simulator: Simulator,
    browser: Browser,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    await stack.start("ingress", "router", "dispatcher")
    desk = await seed_desk(stack, operators=1, outgoing_url=f"{simulator.url}/thirdparty/acme/outgoing")
    [(agent_id, token)] = desk.operators.items()
    async with stack.admin() as admin:
        created = await admin.post("/api/admin/operators", json={"name": "Sam", "role": "supervisor", "max_chats": 3})
        supervisor_token, supervisor_id = created.json()["token"], created.json()["id"]
        csat = {"csat": {"enabled": True, "question": "Rate us 1-5"}}
        assert (await admin.patch(f"/api/admin/queues/{desk.queue_id}", json=csat)).status_code == 200

    now = int(datetime.now(UTC).timestamp())
    async with stack.client("ingress") as ingress:
        for message_id, text in (("in-1", "my parcel?"), ("in-2", "4 great help")):
            raw, headers = signed(customer_message(message_id, text=text, timestamp=now), desk.secret)
            assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200
            stored = await eventually(lambda: db.messages.find_one({"provider_message_id": message_id, "routed": True}))  # noqa: B023
            if message_id == "in-1":
                async with stack.client("router", token) as client:
                    path = f"/api/chats/{stored['chat_id']}"
                    assert (await client.post(f"{path}/messages", json={"text": "Found it"})).status_code == 202
                    assert (await client.post(f"{path}/close")).status_code == 200
    await eventually(lambda: db.chats.find_one({"rating.score": 4}))

    s = await sign_in(browser, stack.url("router"), supervisor_token)
    page = s.page
    await page.set_viewport_size({"width": 1280, "height": 1100})
    await page.locator("#view-toggle").click()
    tiles = page.locator("#report-tiles .tile")
    await expect(tiles).to_have_count(6)
    await expect(tiles.nth(0).locator(".tile-value")).to_have_text("1")
    await expect(tiles.nth(5).locator(".tile-value")).to_have_text("4.00 / 5 (1)")
    # The last 30 days, today included.
    await expect(page.locator("#svg-days rect.bar-opened[data-date]")).to_have_count(30)
    await expect(page.locator("#svg-times rect")).to_have_count(4)
    await expect(page.locator("#rating-rows tr")).to_have_count(1)
    await expect(page.locator("#rating-rows .stars")).to_have_text("★★★★☆")
    await expect(page.locator("#rating-rows td").nth(2)).to_have_text("great help")
    await page.screenshot(path=tmp_path / "supervisor-reports.png", full_page=True)

    # The period picker: the last 7 days.
    await page.locator("#report-period").select_option("7")
    await page.locator("#report-form button[type=submit]").click()
    await expect(page.locator("#svg-days rect.bar-opened[data-date]")).to_have_count(7)

    # Business hours: a zone that is none is refused with the reason, a good one saved.
    await page.locator("#hours-always").uncheck()
    await page.locator("#hours-zone").fill("Mars/Olympus")
    await page.locator("#hours-mon").fill("09:00-12:30, 13:30-18:00")
    await page.locator("#hours-greeting").fill("Hello! We are here.")
    await page.locator("#hours-form button[type=submit]").click()
    await expect(page.locator("#hours-error")).to_contain_text("IANA")
    await page.locator("#hours-zone").fill("Europe/Berlin")
    await page.locator("#hours-holidays").fill("2026-12-25")
    await page.locator("#hours-form button[type=submit]").click()
    await expect(page.locator("#hours-result")).to_have_text("Saved.")
    await page.screenshot(path=tmp_path / "supervisor-hours.png", full_page=True)
    async with stack.admin() as admin:
        queue = (await admin.get(f"/api/admin/queues/{desk.queue_id}")).json()
    assert queue["business_hours"] == {
        "timezone": "Europe/Berlin",
        "weekly": {"mon": [["09:00", "12:30"], ["13:30", "18:00"]]},
        "holidays": ["2026-12-25"],
    }
    assert queue["greeting_text"] == "Hello! We are here." and queue["csat"]["enabled"] is True
    async with stack.client("router", token) as client:  # an operator who is not a supervisor
        refused = await client.patch(f"/api/supervisor/queues/{desk.queue_id}", json={"greeting_text": "x"})
        assert refused.status_code == 403
    async with stack.client("router", supervisor_token) as client:
        other = await client.patch(f"/api/supervisor/queues/{desk.queue_id}", json={"routing_rule": "to_available"})
        assert other.status_code == 400 and "routing_rule" in other.json()["detail"]
    async with stack.admin() as admin:  # the supervisor's writes are audited, refused ones too
        audit = (await admin.get("/api/admin/audit", params={"limit": 20})).json()["items"]
    path = f"/api/supervisor/queues/{desk.queue_id}"
    mine = [(e["actor"]["name"], e["status"], e["target_id"]) for e in audit if e["path"] == path]
    assert mine[:2] == [(f"operator:{supervisor_id}", 400, desk.queue_id), (f"operator:{agent_id}", 403, desk.queue_id)]
    assert (f"operator:{supervisor_id}", 200, desk.queue_id) in mine
    assert [e for e in s.errors if "status of 400" not in e] == []  # the refused zone's answer is the only one
    print(f"screenshots: {tmp_path}")
