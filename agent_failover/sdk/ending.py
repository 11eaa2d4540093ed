"""Why an agent stopped, as the error its ``run()`` raises.

A fence is the monitor's verdict on the epoch: :class:`~agent_failover.errors.FencedError`
(restart to work again), or :class:`~agent_failover.errors.ConfigError` when the monitor refused
the agent's configuration, since restarting as it is would be refused again. A background
thread's failure is translated so that callers can tell an outage from a bug: librdkafka giving
up is a :class:`~agent_failover.errors.BrokerError`, anything unexpected an
:class:`~agent_failover.errors.InternalError`, never retryable.
"""

from __future__ import annotations

from confluent_kafka import KafkaException

from agent_failover.errors import (
    AgentFailoverError,
    ConfigError,
    FencedError,
    InternalError,
)
from agent_failover.models import Control, DispatchReason
from agent_failover.sdk.kafka import broker_error


def fence_error(fence: Control, agent_id: str, epoch: int) -> AgentFailoverError:
    """The error for the epoch ``(agent_id, epoch)`` that ``fence`` ended."""
    if fence.reason is DispatchReason.MISCONFIGURED:
        return ConfigError(
            f"the monitor refused agent {agent_id}: {fence.detail or 'misconfigured'}"
        )
    return FencedError(
        f"agent {agent_id} epoch {epoch} was fenced by the monitor "
        f"({fence.decision_id}, {fence.reason or 'no reason given'}); restart to work "
        "again with a new epoch"
    )


def failure_error(exc: BaseException, agent_id: str, thread: str) -> AgentFailoverError:
    """``thread``'s failure as a library error (cause kept): a bug is no outage.

    A library error is returned as it is; a librdkafka failure as :class:`BrokerError`; anything
    else as :class:`InternalError`.
    """
    if isinstance(exc, AgentFailoverError):
        return exc
    where = f"agent {agent_id} stopped: thread {thread} failed"
    if isinstance(exc, KafkaException):  # librdkafka gave up (fatal error, authentication)
        error = broker_error(where, exc)
        error.__cause__ = exc
        return error
    return InternalError(f"{where}: {type(exc).__name__}: {exc}", cause=exc)
