"""Services and the MongoDB stand-in as real child processes of one test, to kill, stop and start again.

A service runs as `python -m omni_<name>` with the test's `Settings` as its environment, the way it runs
in production; its output goes to a log file under the test's directory, which `Processes.logs()` shows
when the test fails. `MongoServer` is an nx-27017 of the test's own (port, data directory), so stopping
it disturbs no other test.
"""

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import IO

import httpx
from pydantic import SecretStr

from omni_runtime.settings import Settings
from tests.support.infra import InfraError, free_port

START_TIMEOUT_SECONDS = 45.0
STOP_GRACE_SECONDS = 15.0
LOG_TAIL_LINES = 60
PR_SET_PDEATHSIG = 1


def settings_environment(settings: Settings) -> dict[str, str]:
    """`settings` as the environment variables `Settings()` reads them back from (every field, spelt out)."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | tuple):
            text = ",".join(str(item) for item in value)
        else:
            text = str(value)
        env[name.upper()] = text
    return env


# Looked up here, in the parent, so that the forked child only makes the one system call before exec.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGKILL if pytest dies, so no service outlives a run."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))


class ChildProcess:
    """One program started (and started again) with the same arguments, its output appended to `log_path`."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def spawn(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is running already")
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._close_log()
        self._log = self.log_path.open("ab")
        self._log.write(f"=== {self.name}: start #{self.starts} at {time.strftime('%H:%M:%S')} ===\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, unacknowledged messages go back to their queues."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait()
        self._note("killed with SIGKILL")

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM, then SIGKILL if it is still running after `grace` seconds."""
        if self.running:
            assert self.process is not None
            self.process.terminate()
            deadline = time.monotonic() + grace
            while self.process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.process.poll() is None:
                self.kill()
        self._close_log()

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no output)"
        return "\n".join(text[-lines:]) or "(no output)"

    def _note(self, line: str) -> None:
        if self._log is not None and not self._log.closed:
            self._log.write(f"=== {self.name}: {line} ===\n".encode())
            self._log.flush()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class ServiceProcess(ChildProcess):
    """`python -m omni_<name>`, ready once its `/healthz` answers (after its lifespan connected everything)."""

    def __init__(self, name: str, settings: Settings, log_dir: Path) -> None:
        env = {**os.environ, **settings_environment(settings), "PYTHONUNBUFFERED": "1"}
        super().__init__(name, [sys.executable, "-m", f"omni_{name}"], env, log_dir / f"{name}.log")
        self.url = f"http://127.0.0.1:{settings.port_of(name)}"

    async def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        self.spawn()
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
            while True:
                if not self.running:
                    raise RuntimeError(f"{self.name} exited during start; its log:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not answer /healthz within {timeout:.0f} s:\n{self.tail()}")
                await asyncio.sleep(0.1)

    async def restart(self) -> float:
        """Start again after a kill or stop; answers how many seconds it took to be healthy."""
        started = time.monotonic()
        await self.start()
        return time.monotonic() - started


class Processes:
    """The service processes of one test, all on the test's settings (its vhost, database and ports)."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.services: dict[str, ServiceProcess] = {}

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    async def start(self, *names: str) -> None:
        """Start them side by side and wait for all to be healthy."""
        for name in names:
            self.services.setdefault(name, ServiceProcess(name, self.settings, self.log_dir))
        await asyncio.gather(*(self.services[name].start() for name in names))

    async def close(self) -> None:
        await asyncio.gather(*(service.stop() for service in self.services.values()))

    def logs(self) -> str:
        return "\n".join(f"----- {name} ({s.log_path}) -----\n{s.tail()}" for name, s in self.services.items())


@contextlib.asynccontextmanager
async def service_processes(settings: Settings, log_dir: Path, *names: str) -> AsyncIterator[Processes]:
    running = Processes(settings, log_dir)
    try:
        await running.start(*names)
        yield running
    finally:
        await running.close()


def nx_27017() -> Path:
    executable = Path(sys.executable).with_name("nx-27017")
    if not executable.exists():
        raise InfraError(f"{executable} is missing: run `uv sync` (nx-27017 is the MongoDB stand-in)")
    return executable


class MongoServer(ChildProcess):
    """An nx-27017 of one test on a port of its own; stopped and started again on the same port and data."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        data_dir = directory / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(nx_27017()),
            "--host",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--data-dir",
            str(data_dir),
            "--log-file",
            str(directory / "nx.log"),
            "--pid-file",
            str(directory / "nx.pid"),
        ]
        super().__init__("mongo", argv, os.environ, directory / "nx.out")

    def url(self, database: str) -> str:
        return f"mongodb://127.0.0.1:{self.port}/{database}"

    async def start(self, timeout: float = 30.0) -> None:
        self.spawn()
        deadline = time.monotonic() + timeout
        while not await _port_answers(self.port):
            if not self.running:
                raise InfraError(f"nx-27017 exited during start:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise InfraError(f"nx-27017 did not listen on {self.port} within {timeout:.0f} s")
            await asyncio.sleep(0.05)


async def _port_answers(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
