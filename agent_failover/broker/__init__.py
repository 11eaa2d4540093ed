"""Brokers for development and tests, and the Tansu compatibility layer.

* :class:`EmbeddedBroker` / :func:`serve`: the embedded Tansu broker (``agent-failover broker``).
* :func:`broker_from_env` / :class:`BrokerHandle`: which broker the CLI, demo and tests use
  (:class:`KafkaContainerUnavailable` where a requested Kafka container cannot run).
* :mod:`agent_failover.broker.compat`: fixes for Tansu's quirks, active only on Tansu
  (:func:`is_tansu`, :func:`faust_patches_for`, :func:`faust_settings_for`).
"""

from agent_failover.broker.compat import (
    apply_faust_patches,
    faust_patches_for,
    faust_settings_for,
    is_tansu,
)
from agent_failover.broker.embedded import EmbeddedBroker, serve, tansu_binary
from agent_failover.broker.select import BrokerHandle, broker_from_env
from agent_failover.errors import KafkaContainerUnavailable

__all__ = [
    "BrokerHandle",
    "EmbeddedBroker",
    "KafkaContainerUnavailable",
    "apply_faust_patches",
    "broker_from_env",
    "faust_patches_for",
    "faust_settings_for",
    "is_tansu",
    "serve",
    "tansu_binary",
]
