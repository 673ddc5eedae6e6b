"""Child processes of the local run: started with their output prefixed by name, probed, and stopped together."""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

import httpx

from omni_devrun.errors import DevrunError

Probe = Callable[[], bool]

TAIL_LINES = 20
COLOURS = ("36", "32", "33", "35", "34", "31", "96", "92")
PR_SET_PDEATHSIG = 1


class Console:
    """Writes whole lines from many threads without interleaving them, each prefixed by its source's name."""

    def __init__(self, stream: IO[str] = sys.stdout, width: int = 11) -> None:
        self._stream = stream
        self._width = width
        self._lock = threading.Lock()
        self._colour = stream.isatty() and not os.environ.get("NO_COLOR")
        self._colours: dict[str, str] = {}

    def line(self, name: str, text: str) -> None:
        prefix = f"{name:<{self._width}} |"
        if self._colour:
            code = self._colours.setdefault(name, COLOURS[len(self._colours) % len(COLOURS)])
            prefix = f"\033[{code}m{prefix}\033[0m"
        self.say(f"{prefix} {text}")

    def say(self, text: str) -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()


@dataclass
class Child:
    """One started process; `tail` keeps its last lines for error messages."""

    name: str
    process: subprocess.Popen[bytes]
    probe: Probe
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    @property
    def exit_code(self) -> int | None:
        return self.process.poll()

    def how_it_ended(self) -> str:
        code = self.exit_code
        if code is not None and code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def last_lines(self) -> str:
        lines = list(self.tail) or ["(no output)"]
        return "\n".join(f"    {line}" for line in lines)


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking the kernel to SIGTERM the child when we die, even by SIGKILL (Linux only).

    Without it a child outlives a killed local run and keeps its port. The C function is looked up here,
    in the parent, so that the forked child only makes the one system call.
    """
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_signal() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))

    return set_signal


def start(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    probe: Probe,
    console: Console,
    shown: Callable[[str], bool] = lambda line: True,
) -> Child:
    """Start `argv` in its own process group (so a terminal's Ctrl-C reaches only us) and relay its output.

    Lines that `shown` refuses are not printed but still kept in the child's tail for error messages.
    """
    try:
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_parent_death_signal(),
        )
    except OSError as exc:
        raise DevrunError(f"cannot start {name} ({argv[0]}): {exc}") from exc
    child = Child(name, process, probe)
    threading.Thread(target=_relay, args=(child, console, shown), name=f"relay-{name}", daemon=True).start()
    return child


def _relay(child: Child, console: Console, shown: Callable[[str], bool]) -> None:
    assert child.process.stdout is not None
    for raw in child.process.stdout:
        text = raw.decode("utf-8", errors="replace").rstrip()
        child.tail.append(text)
        if shown(text):
            console.line(child.name, text)


def http_probe(url: str) -> Probe:
    def probe() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def tcp_probe(host: str, port: int) -> Probe:
    def probe() -> bool:
        return port_answers(host, port)

    return probe


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_ready(children: Sequence[Child], what: Mapping[str, str], timeout: float) -> None:
    """Wait until every child's probe passes; fail naming the first that exits or stays silent past `timeout`."""
    deadline = time.monotonic() + timeout
    pending = list(children)
    while pending:
        for child in list(pending):
            if child.exit_code is not None:
                raise DevrunError(
                    f"{child.name} {child.how_it_ended()} before answering {what[child.name]}; "
                    f"its last lines:\n{child.last_lines()}"
                )
            if child.probe():
                pending.remove(child)
        if pending and time.monotonic() > deadline:
            child = pending[0]
            raise DevrunError(
                f"{child.name} did not answer {what[child.name]} within {timeout:.0f} s; "
                f"its last lines:\n{child.last_lines()}"
            )
        if pending:
            time.sleep(0.3)


def first_exited(children: Sequence[Child]) -> Child | None:
    return next((child for child in children if child.exit_code is not None), None)


def stop_all(children: Sequence[Child], grace: float, console: Console) -> None:
    """SIGTERM to every child, newest first; whoever is still running after `grace` seconds gets SIGKILL.

    A KeyboardInterrupt while waiting (a second Ctrl-C) skips the rest of the grace period.
    """
    running = [child for child in reversed(children) if child.exit_code is None]
    for child in running:
        _signal(child, signal.SIGTERM)
    reason = _wait_for_exit(running, grace)
    for child in running:
        if child.exit_code is None:
            console.say(f"devrun: {child.name} {reason}, killing it")
            _signal(child, signal.SIGKILL)
    for child in running:
        child.process.wait()


def _wait_for_exit(running: Sequence[Child], grace: float) -> str:
    """Wait up to `grace` seconds for every child to exit; why any still running is killed."""
    deadline = time.monotonic() + grace
    try:
        while any(child.exit_code is None for child in running) and time.monotonic() < deadline:
            time.sleep(0.1)
    except KeyboardInterrupt:
        return "interrupted again"
    return f"still running after {grace:.0f} s"


def _signal(child: Child, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, signum)
