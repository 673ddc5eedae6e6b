"""The real broker and database the tests run against.

Where a Docker engine answers, testcontainers starts RabbitMQ and MongoDB. Elsewhere the local
RabbitMQ is used (started if it is down) and an nx-27017 MongoDB stand-in is started on a free
port. Nothing is skipped: if a service cannot be had, the session fails with the reason.
"""

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx


class InfraError(RuntimeError):
    pass


@dataclass(frozen=True)
class Infra:
    amqp_host: str
    amqp_port: int
    amqp_user: str
    amqp_password: str
    management_url: str
    mongo_base: str  # mongodb://host:port
    kind: str  # "containers" or "local"

    def amqp_url(self, vhost: str) -> str:
        return f"amqp://{self.amqp_user}:{self.amqp_password}@{self.amqp_host}:{self.amqp_port}/{quote(vhost, safe='')}"

    def management(self) -> httpx.Client:
        return httpx.Client(base_url=self.management_url, auth=(self.amqp_user, self.amqp_password), timeout=30)


def free_port() -> int:
    """A port nobody listens on now, chosen below the kernel's ephemeral range: a port from that range (the one
    `bind(0)` hands out) may be taken as the local port of an outgoing connection, to the broker or the database,
    between this answer and the server's bind (seen once in the whole suite: 'address already in use')."""
    low = _ephemeral_low()
    for _ in range(200 if low > PRIVATE_PORTS_FROM + 1000 else 0):
        port = random.randint(PRIVATE_PORTS_FROM, low - 1)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # below the range, everything taken: the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Where free_port looks: above the ports services usually own, below the ephemeral range (32768 on Linux by default).
PRIVATE_PORTS_FROM = 20_000


def _ephemeral_low() -> int:
    """The first port of the kernel's range for outgoing connections' local ports."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return 32_768


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def _wait(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise InfraError(f"{what} did not come up within {seconds:.0f} s")


def docker_available() -> bool:
    if os.environ.get("OMNI_TEST_INFRA") == "local":
        return False
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def _management_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/overview", auth=("guest", "guest"), timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def local_infra() -> Iterator[Infra]:
    host, port = "127.0.0.1", 5672
    if not _port_open(host, port):
        if shutil.which("rabbitmq-server") is None:
            raise InfraError("RabbitMQ is not running on 127.0.0.1:5672 and rabbitmq-server is not installed")
        subprocess.run(["rabbitmq-server", "-detached"], check=False)
        _wait(lambda: _port_open(host, port), 90, "RabbitMQ on 127.0.0.1:5672")
    management = "http://127.0.0.1:15672"
    if not _management_up(management):
        subprocess.run(["rabbitmq-plugins", "enable", "rabbitmq_management"], check=False, capture_output=True)
        _wait(lambda: _management_up(management), 60, "the RabbitMQ management API on 15672")
    nx = Path(sys.executable).with_name("nx-27017")
    if not nx.exists():
        raise InfraError(f"{nx} is missing: run `uv sync` (nx-27017 is the MongoDB stand-in)")
    mongo_port = free_port()
    data_dir = tempfile.mkdtemp(prefix="omni-nx-")
    log = Path(data_dir) / "nx.log"
    process = subprocess.Popen(
        [
            str(nx),
            "--host",
            "127.0.0.1",
            "-p",
            str(mongo_port),
            "--data-dir",
            data_dir,
            "--log-file",
            str(log),
            "--pid-file",
            str(Path(data_dir) / "nx.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(lambda: _port_open("127.0.0.1", mongo_port) or process.poll() is not None, 30, "nx-27017")
        if process.poll() is not None:
            raise InfraError(f"nx-27017 exited with {process.returncode}; see {log}")
        yield Infra(host, port, "guest", "guest", management, f"mongodb://127.0.0.1:{mongo_port}", "local")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def container_infra() -> Iterator[Infra]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.mongodb import MongoDbContainer

    rabbit = DockerContainer("rabbitmq:3.13-management").with_exposed_ports(5672, 15672)
    mongo = MongoDbContainer("mongo:7", username=None, password=None)
    with rabbit, mongo:
        wait_for_logs(rabbit, "Server startup complete", timeout=120)
        host = rabbit.get_container_host_ip()
        amqp_port = int(rabbit.get_exposed_port(5672))
        management = f"http://{host}:{rabbit.get_exposed_port(15672)}"
        _wait(lambda: _management_up(management), 60, "the RabbitMQ management API")
        mongo_base = f"mongodb://{mongo.get_container_host_ip()}:{mongo.get_exposed_port(27017)}"
        yield Infra(host, amqp_port, "guest", "guest", management, mongo_base, "containers")


def start_infra() -> contextlib.AbstractContextManager[Infra]:
    return container_infra() if docker_available() else local_infra()


def create_vhost(infra: Infra, name: str) -> None:
    with infra.management() as client:
        client.put(f"/api/vhosts/{quote(name, safe='')}").raise_for_status()
        client.put(
            f"/api/permissions/{quote(name, safe='')}/{infra.amqp_user}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()


def delete_vhost(infra: Infra, name: str) -> None:
    with infra.management() as client:
        client.delete(f"/api/vhosts/{quote(name, safe='')}")
