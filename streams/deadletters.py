"""Dead letters for input that failed decoding or validation.

The builder is shared with the SDK and lives next to the model it builds
(:mod:`agent_failover.models.deadletter`); this module keeps the monitor's import of it.
"""

from __future__ import annotations

from agent_failover.models.deadletter import cut_key, dead_letter

__all__ = ["cut_key", "dead_letter"]
