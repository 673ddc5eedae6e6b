"""Prometheus metrics, one registry per service instance (tests run several in one process)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.consumed = Counter(
            "omni_consumed_messages",
            "Broker messages handled, by queue and outcome (ok, retried, parked)",
            ["queue", "outcome"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "omni_webhooks",
            "Webhook requests by provider and answer status",
            ["provider", "status"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "omni_deliveries",
            "Outgoing deliveries by provider and outcome",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "omni_http_request_seconds",
            "HTTP handling time",
            ["route"],
            registry=self.registry,
        )
        self.database_commands = Counter(
            "omni_database_commands",
            "Database commands this process sent, by command name (find, insert, update, ...) and collection",
            ["command", "collection"],
            registry=self.registry,
        )
        # Which of the service's worker processes answers (INGRESS_WORKERS), with its process id: each worker
        # keeps and answers its own figures.
        self.worker = Gauge(
            "omni_worker",
            "This process: the service's worker index and process id (always 1)",
            ["worker", "pid"],
            registry=self.registry,
        )
        self.service = service
