"""Unit tests: pure code, and the router's use cases on the in-memory fakes (no broker, no database)."""

from tests.support.world import world_fixture

world = world_fixture("fake")
