"""A PyMongo listener that records the filters of the writes a client sends, to assert their shape."""

from pymongo import monitoring

from omni_runtime.database import Document

# command name -> (its list of items, the item's filter)
WRITES = {"update": ("updates", "q"), "delete": ("deletes", "q")}


class Writes(monitoring.CommandListener):
    """The filters of the updates, deletes and findAndModify commands a client sends: (collection, filter)."""

    def __init__(self) -> None:
        self.filters: list[tuple[str, Document]] = []

    def on(self, collection: str) -> list[Document]:
        return [query for name, query in self.filters if name == collection]

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        if event.command_name in WRITES:
            items, query = WRITES[event.command_name]
            for item in command.get(items) or ():
                self.filters.append((command[event.command_name], dict(item[query])))
        elif event.command_name == "findAndModify":
            self.filters.append((command["findAndModify"], dict(command.get("query") or {})))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
