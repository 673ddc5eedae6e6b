"""The one settings object: every service reads the environment variables listed in docs/configuration.md through it."""

import math
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MAX_DEFAULT_INGRESS_WORKERS = 8


def available_cpus(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may run on (its affinity), fewer if a cgroup (v2) quota allows less (a container's
    CPU limit): `cpu.max` reads `<quota> <period>` or `max <period>`."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def default_ingress_workers() -> int:
    """One ingress worker per available CPU, at most MAX_DEFAULT_INGRESS_WORKERS (each is a process of its own
    with its own broker and database connections)."""
    return min(available_cpus(), MAX_DEFAULT_INGRESS_WORKERS)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    mongodb_url: str = "mongodb://127.0.0.1:27017/omnichannel"
    ingress_port: int = 8080
    router_port: int = 8081
    dispatcher_port: int = 8082
    profiles_port: int = 8083
    attachments_port: int = 8084
    http_host: str = "127.0.0.1"
    public_base_url: str = "http://127.0.0.1:8080"
    admin_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    # Telegram long polling (ingress, channels with `mode: polling`): getUpdates' wait in whole seconds, and how
    # often channels are looked up to start and stop their pollers.
    telegram_poll_timeout_seconds: int = Field(default=20, ge=0, le=50)
    telegram_poll_discovery_seconds: float = 10.0
    meta_graph_api_url: str = "https://graph.facebook.com/v21.0"
    twilio_api_url: str = "https://api.twilio.com"
    attachment_max_bytes: int = 26_214_400
    allow_private_fetch: bool = False
    # Operators' files that messengers fetch by URL (Graph, Twilio, third-party) go out as signed, expiring links
    # to ingress's `GET /media/{token}`: the HMAC key (ingress and dispatcher must share it; none: no such links),
    # and how long a link works.
    media_signing_key: SecretStr | None = Field(default=None, min_length=32)
    media_url_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    webhook_max_bytes: int = 1_048_576
    # Ingress's worker processes, all on INGRESS_PORT (SO_REUSEPORT: the kernel spreads connections), each with
    # its own broker and database connections; Telegram's pollers run in the first one only. By default one per
    # available CPU (at most 8): one worker is one core's worth of webhooks.
    ingress_workers: int = Field(default_factory=default_ingress_workers, ge=1, le=64)
    # Growing waits between attempts of a failed consumer step, then the parking lot. NoDecode: the environment
    # spells it `1000,5000,...`, which pydantic-settings would otherwise try (and fail) to read as JSON.
    retry_delays_ms: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [1_000, 5_000, 30_000, 120_000, 600_000]
    )
    max_attempts: int = 6
    prefetch: int = 32
    # Broker layout (topology.py), the same for every service of a deployment. The router's input is split by
    # chat into this many partition queues (changing it: docs/delivery.md); a consumer queue parks
    # a message that was handed out this many times without being settled (its consumer crashed or stalled).
    router_partitions: int = Field(default=8, ge=1, le=256)
    delivery_limit: int = Field(default=10, ge=1)
    # Unacknowledged messages per router partition; one chat's messages still run one at a time.
    router_prefetch: int = Field(default=32, ge=1)
    # Batches on the router's input (docs/delivery.md): each partition takes up to this many messages and stores
    # them in bulk, its batch combined with the other partitions' into one call that takes what was handed in within
    # this many milliseconds of the oldest (each partition waits that long itself when batches are not combined).
    # 1: one message at a time.
    router_batch_size: int = Field(default=64, ge=1, le=1000)
    router_batch_wait_ms: float = Field(default=20.0, ge=0, le=1000)
    # Reports from other services (`router.updates`) in batches too, up to ROUTER_BATCH_SIZE or what came within this
    # many milliseconds of the first: a new customer's profile comes back soon after its first message, and resolved
    # profiles are written together (Updates.apply_batch); the other reports one by one, side by side.
    router_updates_wait_ms: float = Field(default=50.0, ge=0, le=1000)
    # The partitions' batches combined into one bulk call, up to this many messages (omni_runtime/combining.py);
    # at most ROUTER_BATCH_SIZE: each partition's batch alone, the partitions side by side.
    router_combined_batch_size: int = Field(default=256, ge=1, le=10000)
    # How often each router process says it is alive; partitions are spread over the live ones.
    router_heartbeat_seconds: float = Field(default=2.0, gt=0)
    publish_timeout_seconds: float = 5.0
    http_timeout_seconds: float = 10.0
    outbox_sweep_seconds: float = 10.0
    # How long the router keeps operator notifications for live streams to replay (`Last-Event-ID`).
    notification_retention_hours: float = Field(default=72.0, gt=0)
    # Routing (router): how long an offer waits for an accept unless its queue sets its own
    # `offer_timeout_seconds`, and how often the router's sweeps run (offers, waiting chats, undelivered
    # notifications; completion timeouts and capacity repair).
    offer_timeout_seconds: float = 60.0
    routing_sweep_seconds: float = 2.0
    completion_sweep_seconds: float = 15.0
    # Incoming HTTP requests: how long their headers, and then their body, may take to arrive before the
    # connection is closed (a half-sent request holds nothing open for longer).
    request_header_timeout_seconds: float = Field(default=10.0, gt=0)
    request_body_timeout_seconds: float = Field(default=30.0, gt=0)
    log_level: str = "INFO"
    # One log line per HTTP request (uvicorn's access log); credentials in query strings are redacted.
    access_log: bool = False

    @field_validator("retry_delays_ms", mode="before")
    @classmethod
    def _split_delays(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.strip("[] ").replace(" ", "").split(",") if part]
        return value

    @field_validator("media_signing_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    def port_of(self, service: str) -> int:
        port: int = getattr(self, f"{service}_port")
        return port
