"""The throughput benchmark (`make bench`) runs, tiny: every figure it promises is printed, each beside its limit.
Timings are not asserted (the machine is shared); that the figures are there and make sense is."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


TINY = [
    "--repeats", "1", "--wrk-seconds", "1", "--webhooks", "200", "--publishes", "200", "--ingress-workers", "2",
    "--drain", "40", "--senders", "5", "--returning-rate", "20", "--returning-seconds", "1", "--returning-senders",
    "5", "--notify-rate", "20", "--notify-seconds", "1",
]  # fmt: skip


@pytest.mark.timeout(300)
def test_the_bench_prints_each_figure_beside_its_limit(tmp_path: Path) -> None:
    # fails, never skips, without Debian's wrk: scripts/test.sh installs it
    assert shutil.which("wrk") is not None, "wrk is not installed (scripts/test.sh installs it: apt-get install wrk)"
    report = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.throughput", *TINY, "--json", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    out = done.stdout
    ingress = re.search(
        r"2 worker\(s\), round 1: ([\d,]+) webhooks/s .* raw ([\d,]+) confirmed publishes/s \(before [\d,]+, after [\d,]+\) \| ratio ([\d.]+)",
        out,
    )
    assert ingress is not None, out
    assert float(ingress.group(3)) > 0
    drain = re.search(
        r"drained (\d+) in .* raw insert_many ([\d,]+) documents/s .* ([\d.]+) database commands per message", out
    )
    assert drain is not None, out
    assert int(drain.group(1)) > 0 and float(drain.group(3)) > 0
    # the backlog stored once and each of its messages notified once, counted by the bench itself
    assert "stored 40 of 40, notified 40 (0 more than once)" in out, out
    returning = re.search(
        r"returning customers' messages at 20/s offered for 1 s \(5 customers\): offered ([\d,]+)/s, taken ([\d,]+)/s, "
        r"20 notified, p50 \d+ ms, p99 \d+ ms \| ([\d.]+) database commands per message \((.*)\) \| CPU cores: "
        r"router ([\d.]+), nx27017 ([\d.]+)",
        out,
    )
    assert returning is not None, out
    assert float(returning.group(1)) > 0 and float(returning.group(2)) > 0
    # each message is at least stored: one insert at the most shared by all 20, one read of its chat at the most
    assert 0.05 <= float(returning.group(3)) < 50, out
    # by command and collection: each message stored by an insert into `messages`, its chat read from `chats`
    assert "insert messages" in returning.group(4) and "find chats" in returning.group(4), out
    assert "message.new': 20}" in out, out
    notify = re.search(
        r"notification at 20/s offered .*: 20 notified, p50 \d+ ms, p99 \d+ ms, throughput \d+/s \| webhook -> stored "
        r"p50 \d+ / p99 \d+ ms, stored -> notified p50 \d+ / p99 \d+ ms \| ([\d.]+) database commands per message "
        r"\((.*)\) \| CPU cores: .*router [\d.]+.*nx27017 [\d.]+",
        out,
    )
    assert notify is not None, out
    # each new customer's message makes a contact, a chat and a message (one insert each at most per message)
    assert 0.05 <= float(notify.group(1)) < 50, out
    assert all(f"insert {name}" in notify.group(2) for name in ("contacts", "chats", "messages")), out
    assert re.search(r"resident memory at the end: ingress \d+ MB, router \d+ MB, dispatcher \d+ MB", out), out
    assert "database: nx-27017" in out
    figures = json.loads(report.read_text())["figures"]
    assert set(figures) >= {"ingress_2w", "drain", "returning", "notify", "rss_mb"}
    assert figures["drain"]["exactly_once"] == [{"stored": 40, "notified": 40, "repeats": 0}]
    assert figures["returning"]["notified"] == 20
    assert figures["returning"]["commands_per_message"] == pytest.approx(
        sum(figures["returning"]["commands_by_name_per_message"].values())
    )
    assert figures["notify"]["notified"] == 20
    assert figures["notify"]["commands_by_name_per_message"]["insert messages"] > 0
