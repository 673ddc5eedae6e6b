"""nx-27017 with every command's time written down: `python -m bench.nx_timed LOG nx-27017-arguments...`.

A diagnosis tool, not part of the services: it runs the stand-in in this process with its command entry points
wrapped, and appends one JSON line per command to LOG: when it ended (`t`, epoch seconds), its name and
collection, the shape of its filter/sort/pipeline (values replaced by their type, operators kept), how long it
waited for the database's lock (`wait`) and how long it held it (`run`), both in seconds. nx-27017 runs every
command of a database under one lock, so a command that holds it long delays every other one.

With `--watch-wal FILE` (a database's `-wal` file, e.g. DATA_DIR/bench.db-wal) a thread reads the WAL's header
every 10 ms and writes `{"wal": "reset", "t": ...}` each time its salt changes: SQLite restarts the WAL after a
checkpoint copied all of it into the database, so each line marks a completed (automatic) checkpoint, to line up
with slow commands.

`python -m bench.nx_timed --summary LOG [--since T0 --until T1]` prints the commands by shape: count, total, mean,
p99 and max of `run`.
"""

import json
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

OPERATIONS = ("find", "update", "delete", "insert", "aggregate", "count", "distinct", "findAndModify", "getMore")


def shape(value: Any) -> Any:
    """`value` with its data replaced by type names, keys and operators kept (lists: the first element's shape)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0]), f"x{len(value)}"] if value else []
    return type(value).__name__


def describe(command: dict[str, Any], payload: dict[str, list[Any]]) -> dict[str, Any]:
    name = next((key for key in command if key in OPERATIONS), next(iter(command), "?"))
    found: dict[str, Any] = {"cmd": name, "coll": command.get(name) if isinstance(command.get(name), str) else None}
    if name == "find":
        for key in ("filter", "sort", "limit", "hint", "projection"):
            if key in command:
                found[key] = shape(command[key]) if key not in ("limit", "sort", "hint") else command[key]
    elif name == "update":
        updates = command.get("updates") or payload.get("updates") or []
        found["n"] = len(updates)
        if updates:
            found["filter"] = shape(updates[0].get("q"))
            found["update"] = sorted(updates[0].get("u", {}))
            found["upsert"] = bool(updates[0].get("upsert"))
            found["multi"] = bool(updates[0].get("multi"))
    elif name == "delete":
        deletes = command.get("deletes") or payload.get("deletes") or []
        found["n"] = len(deletes)
        if deletes:
            found["filter"] = shape(deletes[0].get("q"))
    elif name == "insert":
        found["n"] = len(command.get("documents") or payload.get("documents") or [])
    elif name == "aggregate":
        found["pipeline"] = shape(command.get("pipeline"))
    elif name in ("count", "distinct"):
        found["filter"] = shape(command.get("query"))
    elif name == "findAndModify":
        found["filter"] = shape(command.get("query"))
        found["sort"] = command.get("sort")
        found["update"] = sorted(command.get("update") or {})
    return found


def key_of(entry: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in entry.items() if k not in ("t", "wait", "run", "n")}, sort_keys=True)


def watch_wal(path: Path, out: Any, write: threading.Lock) -> None:
    """Notes each restart of the WAL (its header's salt changes after a checkpoint has copied it all back)."""
    last = b""
    while True:
        try:
            with path.open("rb") as wal:
                header = wal.read(32)
        except OSError:
            header = b""
        salt = header[16:24]
        if salt and salt != last:
            if last:
                with write:
                    out.write(json.dumps({"wal": "reset", "t": round(time.time(), 4)}) + "\n")
            last = salt
        time.sleep(0.01)


def run(log_path: Path, argv: list[str]) -> None:
    from nx_27017 import handler as nx_handler
    from nx_27017.nx_27017 import main

    out = log_path.open("a", buffering=1)
    write = threading.Lock()
    cls = nx_handler.NeoSQLiteHandler

    def timed(inner: Any) -> Any:
        def wrapper(self: Any, msg: Any) -> Any:
            started = time.perf_counter()
            db_name = nx_handler._msg_db_name(msg) if isinstance(msg, dict) else "test"
            with self._lock_for(db_name):
                locked = time.perf_counter()
                result = inner(self, msg)
                ended = time.perf_counter()
            try:
                command: dict[str, Any] = {}
                payload: dict[str, list[Any]] = {}
                for kind, doc in msg.get("sections", []):
                    if kind == "body":
                        command = doc
                    elif isinstance(doc, dict):
                        payload.update({k: v for k, v in doc.items() if isinstance(v, list)})
                    elif kind == "payload_docs" and isinstance(doc, list):
                        payload.setdefault("documents", []).extend(doc)
                entry = describe(command, payload) if command else {"cmd": "query"}
                if entry["cmd"] in ("hello", "ismaster", "isMaster", "ping", "endSessions"):
                    return result
                entry.update(t=round(time.time(), 4), wait=round(locked - started, 5), run=round(ended - locked, 5))
                line = json.dumps(entry, default=str)
                with write:
                    out.write(line + "\n")
            except Exception as exc:  # the diagnosis must never break the server
                with write:
                    out.write(json.dumps({"cmd": "?", "error": repr(exc)}) + "\n")
            return result

        return wrapper

    cls.handle_command = timed(cls.handle_command.__wrapped__)  # type: ignore[attr-defined]
    cls.handle_insert = timed(cls.handle_insert.__wrapped__)  # type: ignore[attr-defined]
    if "--watch-wal" in argv:
        at = argv.index("--watch-wal")
        wal = Path(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
        threading.Thread(target=watch_wal, args=(wal, out, write), daemon=True).start()
    sys.argv = ["nx-27017", *argv]
    main()


def summary(log_path: Path, since: float = 0.0, until: float = float("inf"), top: int = 40) -> str:
    runs: dict[str, list[float]] = defaultdict(list)
    for line in log_path.read_text().splitlines():
        entry = json.loads(line)
        if "run" in entry and since <= entry["t"] <= until:
            runs[key_of(entry)].append(entry["run"])
    rows = []
    for key, values in runs.items():
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        rows.append((sum(values), len(values), sum(values) / len(values), p99, values[-1], key))
    rows.sort(reverse=True)
    lines = [f"{'total s':>8} {'count':>6} {'mean ms':>8} {'p99 ms':>8} {'max ms':>8}  shape"]
    for total, count, mean, p99, high, key in rows[:top]:
        lines.append(f"{total:8.2f} {count:6d} {mean * 1e3:8.2f} {p99 * 1e3:8.2f} {high * 1e3:8.1f}  {key}")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--summary"]:
        args = sys.argv[2:]
        since = float(args[args.index("--since") + 1]) if "--since" in args else 0.0
        until = float(args[args.index("--until") + 1]) if "--until" in args else float("inf")
        print(summary(Path(args[0]), since, until))
    else:
        run(Path(sys.argv[1]), sys.argv[2:])
