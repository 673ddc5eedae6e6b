"""The router's behaviours (tests/unit/test_engine.py, test_services.py and test_batches.py, written once) on the MongoDB
repositories instead of the fakes: where the two differ, a fake has drifted from what the database does."""

import pytest

from tests.support.world import world_fixture
from tests.unit.test_batches import *  # noqa: F403  (the behaviours, collected here once more)
from tests.unit.test_contacts import *  # noqa: F403
from tests.unit.test_courtesy import *  # noqa: F403
from tests.unit.test_engine import *  # noqa: F403
from tests.unit.test_integration import *  # noqa: F403
from tests.unit.test_operator_files_and_templates import *  # noqa: F403
from tests.unit.test_reports import *  # noqa: F403
from tests.unit.test_services import *  # noqa: F403
from tests.unit.test_workplace import *  # noqa: F403

pytestmark = pytest.mark.integration

world = world_fixture("mongo")
