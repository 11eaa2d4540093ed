"""agent-failover: Kafka-native failover for fleets of AI agents.

Agents embed the SDK (:class:`Agent` / :class:`AsyncAgent`): heartbeats, durable checkpoints,
failover tasks before normal ones, fencing. The monitor (the ``streams`` package) detects dead
agents and re-dispatches their tasks from their last checkpoint.
"""

from __future__ import annotations

__version__ = "0.1.0"
