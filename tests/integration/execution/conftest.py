"""Fixtures of the executor-over-live-adapter tests: the fake Binance and a full stack on it."""

from tests.integration.execution.coinm_rig import coinm_future, coinm_rig_factory  # noqa: F401
from tests.integration.execution.cross_rig import cross_rig_factory  # noqa: F401
from tests.integration.execution.rig import rig_factory  # noqa: F401
from tests.integration.execution.roll_rig import roll_rig_factory  # noqa: F401
