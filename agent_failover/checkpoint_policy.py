"""When an agent's ``TaskContext.progress()`` writes a durable checkpoint (the policy).

Read from ``AGENT_FAILOVER_CHECKPOINT_POLICY`` (``every_step``, ``on_demand`` or
``every:<seconds>``) or given to :class:`~agent_failover.config.AgentConfig` in code.
"""

from __future__ import annotations

import dataclasses
import enum

from agent_failover.errors import ConfigError
from agent_failover.settings import seconds

#: Checkpoint intervals ``every:<seconds>`` accept (a day at most: longer is ``on_demand``).
CHECKPOINT_INTERVAL = seconds(0.001, 86400)


class CheckpointMode(enum.StrEnum):
    """When ``TaskContext.progress()`` writes a durable checkpoint."""

    EVERY_STEP = "every_step"
    INTERVAL = "interval"
    ON_DEMAND = "on_demand"


@dataclasses.dataclass(frozen=True)
class CheckpointPolicy:
    """Checkpoint policy: every step, at most every ``interval_s`` seconds, or only on demand.

    ``TaskContext.checkpoint()`` always writes; ``TaskContext.progress()`` writes as the policy
    says.
    """

    mode: CheckpointMode = CheckpointMode.EVERY_STEP
    interval_s: float = 1.0

    def __post_init__(self) -> None:
        if not CHECKPOINT_INTERVAL.valid(self.interval_s):
            raise ConfigError(
                f"CheckpointPolicy.interval_s must be {CHECKPOINT_INTERVAL.expect}, "
                f"got {self.interval_s!r}"
            )

    @classmethod
    def every_step(cls) -> CheckpointPolicy:
        return cls(CheckpointMode.EVERY_STEP)

    @classmethod
    def every(cls, seconds: float) -> CheckpointPolicy:
        return cls(CheckpointMode.INTERVAL, seconds)

    @classmethod
    def on_demand(cls) -> CheckpointPolicy:
        return cls(CheckpointMode.ON_DEMAND)

    @classmethod
    def parse(cls, text: str) -> CheckpointPolicy:
        """Parse ``every_step``, ``on_demand`` or ``every:<seconds>``."""
        if text == CheckpointMode.EVERY_STEP:
            return cls.every_step()
        if text == CheckpointMode.ON_DEMAND:
            return cls.on_demand()
        if text.startswith("every:"):
            try:
                return cls.every(float(text.removeprefix("every:")))
            except ValueError:
                pass
        raise ConfigError(
            f"checkpoint policy {text!r}: expected every_step, on_demand or every:<seconds>"
        )
