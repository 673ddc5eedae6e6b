"""The stand-ins for what production gets from Docker: the local RabbitMQ and nx-27017 in place of MongoDB."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from omni_devrun.errors import DevrunError
from omni_devrun.plan import MONGO_DEFAULT_PORT, host_and_port, is_local, without_password
from omni_devrun.processes import Child, Console, start, tcp_probe

AMQP_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
AMQP_METHOD_FRAME = 1
RABBITMQ_START_TIMEOUT = 90.0


def amqp_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether an AMQP 0-9-1 broker answers: it replies to the protocol header with a method frame."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(AMQP_PROTOCOL_HEADER)
            return sock.recv(1)[:1] == bytes([AMQP_METHOD_FRAME])
    except OSError:
        return False


def ensure_rabbitmq(amqp_url: str, console: Console) -> None:
    """Make sure the broker answers; start the local one if it is down, fail with what to do otherwise."""
    host, port = host_and_port(amqp_url, 5672)
    if amqp_answers(host, port):
        return
    shown = without_password(amqp_url)
    if not is_local(host):
        raise DevrunError(f"RabbitMQ does not answer at {shown}; start it or point AMQP_URL at one that runs")
    server = shutil.which("rabbitmq-server") or shutil.which("rabbitmq-server", path="/usr/sbin:/usr/local/sbin")
    if server is None:
        raise DevrunError(
            f"RabbitMQ does not answer at {shown} and rabbitmq-server is not installed "
            "(apt-get install rabbitmq-server, or set AMQP_URL to a running broker)"
        )
    console.say(f"devrun: RabbitMQ is down, starting it ({server} -detached)")
    result = subprocess.run([server, "-detached"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise DevrunError(f"`rabbitmq-server -detached` failed with code {result.returncode}: {output}")
    deadline = time.monotonic() + RABBITMQ_START_TIMEOUT
    while not amqp_answers(host, port):
        if time.monotonic() > deadline:
            raise DevrunError(
                f"RabbitMQ was started but does not answer at {shown} after {RABBITMQ_START_TIMEOUT:.0f} s; "
                "see /var/log/rabbitmq/ and `rabbitmq-diagnostics status`"
            )
        time.sleep(1.0)
    console.say("devrun: RabbitMQ is up")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on the port now. Bound the way the servers bind (asyncio's and uvicorn's
    servers set SO_REUSEADDR): connections a stopped run left in TIME_WAIT do not make the port busy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def mongo_port() -> int:
    """MongoDB's own port when nothing holds it, so tools connect without flags; any free one otherwise."""
    return MONGO_DEFAULT_PORT if port_is_free(MONGO_DEFAULT_PORT) else free_port()


def nx_27017_executable() -> Path:
    """The nx-27017 of this environment, beside the interpreter (PATH may hold another or none)."""
    executable = Path(sys.executable).parent / "nx-27017"
    if not executable.exists():
        raise DevrunError(f"{executable} is missing; run `uv sync --frozen` (nx-27017 is a dependency of omni-devrun)")
    return executable


def start_nx_27017(port: int, run_dir: Path, console: Console) -> Child:
    """nx-27017 on loopback with one SQLite file per database under `run_dir`/mongo; its pid file stays ours."""
    data_dir = run_dir / "mongo"
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(nx_27017_executable()),
        "--host",
        "127.0.0.1",
        "-p",
        str(port),
        "--data-dir",
        str(data_dir),
        # Its defaults are shared /tmp paths: a second instance (tests, another run) would refuse to start.
        "--pid-file",
        str(run_dir / "nx-27017.pid"),
        "--log-file",
        str(run_dir / "nx-27017.log"),
    ]
    return start("mongo", argv, os.environ, tcp_probe("127.0.0.1", port), console, shown=_nx_27017_shown)


def _nx_27017_shown(line: str) -> bool:
    # nx-27017 logs every command at INFO; its log file keeps them, the console gets warnings and errors.
    return not any(level in line for level in (" - INFO - ", " - DEBUG - "))
