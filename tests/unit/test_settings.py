"""Settings read from the environment the way a service process gets them."""

from pathlib import Path

import pytest

from omni_runtime.settings import MAX_DEFAULT_INGRESS_WORKERS, Settings, available_cpus


@pytest.mark.parametrize("spelt", ["1000,5000,30000", " 1000, 5000 ,30000", "[1000, 5000, 30000]"])
def test_retry_delays_from_the_environment(monkeypatch: pytest.MonkeyPatch, spelt: str) -> None:
    monkeypatch.setenv("RETRY_DELAYS_MS", spelt)
    assert Settings().retry_delays_ms == [1000, 5000, 30000]


def test_retry_delays_default_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETRY_DELAYS_MS", raising=False)
    assert Settings().retry_delays_ms == [1_000, 5_000, 30_000, 120_000, 600_000]


def test_ingress_runs_one_worker_per_available_cpu_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INGRESS_WORKERS", raising=False)
    assert Settings().ingress_workers == min(available_cpus(), MAX_DEFAULT_INGRESS_WORKERS)
    monkeypatch.setenv("INGRESS_WORKERS", "3")
    assert Settings().ingress_workers == 3


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", None), ("100000 100000\n", 1), ("150000 100000\n", 2), ("50000 100000\n", 1), ("junk", None)],
)
def test_a_cgroup_quota_lowers_the_cpus_counted(tmp_path: Path, cpu_max: str, expected: int | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    unlimited = available_cpus(tmp_path / "missing")
    assert available_cpus(path) == (unlimited if expected is None else min(unlimited, expected))
