"""Settings read from the environment the way a service process gets them."""

import pytest

from omni_runtime.settings import Settings


@pytest.mark.parametrize("spelt", ["1000,5000,30000", " 1000, 5000 ,30000", "[1000, 5000, 30000]"])
def test_retry_delays_from_the_environment(monkeypatch: pytest.MonkeyPatch, spelt: str) -> None:
    monkeypatch.setenv("RETRY_DELAYS_MS", spelt)
    assert Settings().retry_delays_ms == [1000, 5000, 30000]


def test_retry_delays_default_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETRY_DELAYS_MS", raising=False)
    assert Settings().retry_delays_ms == [1_000, 5_000, 30_000, 120_000, 600_000]
