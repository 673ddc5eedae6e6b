"""`python -m omni_devrun [--demo] [--no-simulator]`: the whole system on this machine, stopped with Ctrl-C."""

import argparse
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from omni_devrun import demo
from omni_devrun.errors import DevrunError
from omni_devrun.plan import (
    SERVICES,
    SIMULATOR,
    SIMULATOR_DEFAULT_PORT,
    ServiceSpec,
    child_environment,
    host_and_port,
    is_local,
    mongodb_url,
    runnable,
    service_specs,
    without_password,
)
from omni_devrun.processes import Child, Console, first_exited, http_probe, port_answers, start, stop_all, wait_ready
from omni_devrun.standins import ensure_rabbitmq, mongo_port, port_is_free, start_nx_27017
from omni_runtime.settings import Settings

STOP_GRACE_SECONDS = 15.0
MONGO_START_TIMEOUT = 30.0
HURRY_AFTER_SECONDS = 1.0


class Stop(Exception):
    """SIGTERM or SIGHUP arrived: shut down as for Ctrl-C."""


@dataclass(frozen=True)
class Options:
    demo: bool
    simulator: bool
    skip: frozenset[str]
    timeout: float
    run_dir: Path


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m omni_devrun", description=__doc__)
    parser.add_argument("--demo", action="store_true", help="seed a queue, an operator and a channel; print curls")
    parser.add_argument("--no-simulator", action="store_true", help="do not start the provider simulator")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=SERVICES,
        help="do not start this service (e.g. to run it yourself under a debugger); repeatable",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds each process has to answer /healthz")
    parser.add_argument("--run-dir", type=Path, default=Path(".run"), help="where nx-27017 keeps its data")
    args = parser.parse_args(argv)
    if args.demo and (args.no_simulator or "router" in args.skip):
        parser.error("--demo needs the router and the simulator")
    return Options(args.demo, not args.no_simulator, frozenset(args.skip), args.timeout, args.run_dir)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def check_can_start(specs: Sequence[ServiceSpec]) -> None:
    """Fail before starting anything if a module is missing or a port is taken, naming every one."""
    problems = [
        f"{spec.name}: `python -m {spec.module}` finds no module (not written yet, or `uv sync --frozen` not run)"
        for spec in specs
        if not runnable(spec.module)
    ]
    problems += [
        f"{spec.name}: port {spec.port} is in use (another local run? set {spec.name.upper()}_PORT to move it)"
        for spec in specs
        if not port_is_free(spec.port)
    ]
    if problems:
        raise DevrunError("cannot start:\n  " + "\n  ".join(problems) + "\n(--skip NAME leaves a service out)")


def table(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {where}" for name, where in rows)


def run(options: Options, console: Console) -> None:
    settings = _settings()
    environ = dict(os.environ)
    specs = _plan(options, settings, environ)
    check_can_start(specs)
    ensure_rabbitmq(settings.amqp_url, console)

    # Filled as they start, so that whatever did start is stopped whenever we leave.
    standins: list[Child] = []
    services: list[Child] = []
    try:
        urls = {spec.name: spec.url for spec in specs}
        ingress_url = f"http://127.0.0.1:{settings.ingress_port}"
        started_mongodb_url = None if environ.get("MONGODB_URL") else _start_mongo(options.run_dir, standins, console)
        generated_token = None if environ.get("ADMIN_TOKEN") else secrets.token_urlsafe(24)
        env = child_environment(
            environ,
            started_mongodb_url=started_mongodb_url,
            admin_token=generated_token or "",
            ingress_url=ingress_url,
            simulator_url=urls.get(SIMULATOR),
            media_signing_key=secrets.token_urlsafe(32),
        )
        _start_services(specs, env, options.timeout, services, console)

        nx_run_dir = options.run_dir if standins else None
        console.say(_where(settings.amqp_url, env["MONGODB_URL"], nx_run_dir, specs, generated_token))
        if options.demo:
            _seed_demo(env["ADMIN_TOKEN"], urls, ingress_url, options.timeout, console)
        console.say("devrun: all up; Ctrl-C stops everything")
        _supervise([*standins, *services])
    finally:
        _shutdown(services, standins, console)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise DevrunError(f"the environment does not make valid settings: {exc}") from None


def _plan(options: Options, settings: Settings, environ: dict[str, str]) -> list[ServiceSpec]:
    """What to start, on which ports; the simulator's port goes into `environ` for the children."""
    simulator_port = int(environ.get("SIMULATOR_PORT") or SIMULATOR_DEFAULT_PORT) if options.simulator else None
    if simulator_port is not None:
        environ["SIMULATOR_PORT"] = str(simulator_port)
    return service_specs({name: settings.port_of(name) for name in SERVICES}, simulator_port, options.skip)


def _start_mongo(run_dir: Path, standins: list[Child], console: Console) -> str:
    """nx-27017 in place of MongoDB; its URL once it accepts connections."""
    port = mongo_port()
    standins.append(start_nx_27017(port, run_dir, console))
    wait_ready(standins, {"mongo": f"127.0.0.1:{port}"}, MONGO_START_TIMEOUT)
    return mongodb_url(port)


def _start_services(
    specs: Sequence[ServiceSpec], env: dict[str, str], timeout: float, services: list[Child], console: Console
) -> None:
    for spec in specs:
        probe = http_probe(f"{spec.url}/healthz")
        services.append(start(spec.name, [sys.executable, "-m", spec.module], env, probe, console))
    wait_ready(services, {spec.name: f"{spec.url}/healthz" for spec in specs}, timeout)


def _shutdown(services: Sequence[Child], standins: Sequence[Child], console: Console) -> None:
    """The services first, so that they finish their work against the database; then the stand-ins."""
    if not services and not standins:
        return
    console.say(f"devrun: stopping (up to {STOP_GRACE_SECONDS:.0f} s; Ctrl-C again to kill at once)")
    stopping_since = time.monotonic()

    def hurry(signum: int, frame: FrameType | None) -> None:
        # Another signal now cuts the grace period short instead of the shutdown itself. One Ctrl-C can arrive
        # twice at once (from the terminal and relayed by `make` or `uv run`): only a later one means "hurry".
        if time.monotonic() - stopping_since > HURRY_AFTER_SECONDS:
            raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, hurry)
    stop_all(services, STOP_GRACE_SECONDS, console)
    stop_all(standins, STOP_GRACE_SECONDS, console)
    console.say("devrun: stopped")


def _where(
    amqp_url: str,
    mongo_url: str,
    nx_run_dir: Path | None,
    specs: Sequence[ServiceSpec],
    generated_token: str | None,
) -> str:
    rows = [("rabbitmq", without_password(amqp_url))]
    host, _ = host_and_port(amqp_url, 5672)
    if is_local(host) and port_answers("127.0.0.1", 15672):
        rows.append(("rabbitmq ui", "http://127.0.0.1:15672"))
    standin = f"  (nx-27017 stand-in: data and log in {nx_run_dir})" if nx_run_dir else ""
    rows.append(("mongodb", without_password(mongo_url) + standin))
    rows += [(spec.name, spec.url) for spec in specs]
    if generated_token:
        rows.append(("admin token", f"{generated_token}  (generated for this run; shown once)"))
    else:
        rows.append(("admin token", "ADMIN_TOKEN from your environment"))
    return "\ndevrun: listening\n" + table(rows) + "\n"


def _seed_demo(admin_token: str, urls: dict[str, str], ingress_url: str, timeout: float, console: Console) -> None:
    router_url, simulator_url = urls["router"], urls[SIMULATOR]
    # /healthz answers as soon as the process serves; the admin API also needs the database and broker.
    _wait_ready_endpoint(f"{router_url}/readyz", timeout)
    seeded = demo.seed(router_url, admin_token, simulator_url)
    lines = demo.curl_lines(seeded, ingress_url=ingress_url, router_url=router_url, simulator_url=simulator_url)
    console.say(
        f"devrun: demo seeded: queue {seeded.queue_id}, operator {seeded.operator_id} (online), "
        f"channel {seeded.channel_id} ({demo.PROVIDER}/{demo.SOURCE})\n\n" + "\n".join(lines) + "\n"
    )


def _wait_ready_endpoint(url: str, timeout: float) -> None:
    probe = http_probe(url)
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise DevrunError(f"{url} did not answer 200 within {timeout:.0f} s")
        time.sleep(0.5)


def _supervise(children: Sequence[Child]) -> None:
    """Block until a signal; a child that dies on its own ends the run, since the rest cannot work without it."""
    while True:
        exited = first_exited(children)
        if exited is not None:
            raise DevrunError(f"{exited.name} {exited.how_it_ended()}; its last lines:\n{exited.last_lines()}")
        time.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    console = Console()
    # Explicitly, since a shell starting us in the background would have us ignore SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGHUP, _raise_stop)
    try:
        run(options, console)
    except DevrunError as exc:
        console.say(f"devrun: error: {exc}")
        return 1
    except (KeyboardInterrupt, Stop):
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
