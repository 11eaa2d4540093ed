"""Brokers for development and tests, and the Tansu compatibility layer.

* :class:`EmbeddedBroker` / :func:`serve`: the embedded Tansu broker (``agent-failover broker``).
"""

from agent_failover.broker.embedded import EmbeddedBroker, serve, tansu_binary

__all__ = ["EmbeddedBroker", "serve", "tansu_binary"]
