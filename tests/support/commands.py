"""A PyMongo listener that records the filters of the commands a client sends, to assert their shape, and the server's
plan for a read, to assert that it is answered from an index."""

import json
from typing import Any

from pymongo import monitoring

from omni_runtime.database import Database, Document

# command name -> (its list of items, the item's filter)
WRITES = {"update": ("updates", "q"), "delete": ("deletes", "q")}
# command name -> its filter
READS = {"find": "filter", "distinct": "query", "count": "query"}


class Writes(monitoring.CommandListener):
    """The filters of the updates, deletes and findAndModify commands a client sends: (collection, filter); and of
    its reads (`reads`), and the name of every command (`names`)."""

    def __init__(self) -> None:
        self.filters: list[tuple[str, Document]] = []
        self.reads: list[tuple[str, Document]] = []
        self.names: list[str] = []

    def on(self, collection: str) -> list[Document]:
        return [query for name, query in self.filters if name == collection]

    def read_on(self, collection: str) -> list[Document]:
        return [query for name, query in self.reads if name == collection]

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        self.names.append(event.command_name)
        if event.command_name in WRITES:
            items, query = WRITES[event.command_name]
            for item in command.get(items) or ():
                self.filters.append((command[event.command_name], dict(item[query])))
        elif event.command_name == "findAndModify":
            self.filters.append((command["findAndModify"], dict(command.get("query") or {})))
        elif event.command_name in READS:
            self.reads.append((command[event.command_name], dict(command.get(READS[event.command_name]) or {})))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def plan(db: Database, collection: str, query: Document) -> Any:
    """The server's winning plan for a find by `query`."""
    explained = await db.command({"explain": {"find": collection, "filter": query}})
    return explained["queryPlanner"]["winningPlan"]


def from_an_index(winning: Any, collection: str, kind: str) -> bool:
    """Whether a plan reads `collection` through an index only; `kind` is the database's (`local`: nx-27017)."""
    if kind == "local":  # SQLite's EXPLAIN QUERY PLAN rows: the table SEARCHed through an index, or SCANned
        # (an `$in` adds a scan of its own few values, `json_each`: not the collection's rows)
        details = [row["detail"] for row in winning if row["detail"].split(" ")[1:2] == [collection]]
        return bool(details) and all(d.startswith(f"SEARCH {collection} USING INDEX") for d in details)
    shown = json.dumps(winning, default=str)
    return "IXSCAN" in shown and "COLLSCAN" not in shown
