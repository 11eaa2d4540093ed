"""The error hierarchy of agent-failover.

Every error the library raises derives from :class:`AgentFailoverError`::

    AgentFailoverError
    ├── ConfigError          bad or missing configuration (never retryable)
    ├── CodecError           a record that does not decode or validate (never retryable)
    ├── BrokerError          the broker refused or did not answer (often retryable)
    │   ├── EmbeddedBrokerError   the embedded development broker failed to start or stop
    │   ├── BrokerUnreachable     no broker answered at the bootstrap address in time
    │   └── TopicSetupError       topics missing or not as configured
    ├── FencedError          this agent epoch or task attempt was superseded (never retryable)
    ├── LifecycleError       a client used before start or after close
    ├── MissingExtraError    an optional part is not installed (names the pip extra)
    └── TaskError            a task handler failed (carries the task id)

Third-party errors are wrapped with ``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations


class AgentFailoverError(Exception):
    """Root of every error raised by agent-failover."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ConfigError(AgentFailoverError, ValueError):
    """Configuration is invalid or incomplete."""


class CodecError(AgentFailoverError, ValueError):
    """A record could not be encoded, decoded or validated against its schema."""

    def __init__(self, message: str, *, record_type: str | None = None) -> None:
        super().__init__(message)
        self.record_type = record_type


class BrokerError(AgentFailoverError):
    """The Kafka broker refused a request or did not answer in time."""

    retryable = True


class EmbeddedBrokerError(BrokerError):
    """The embedded development broker could not be started or stopped."""

    retryable = False


class FencedError(AgentFailoverError):
    """This agent epoch or task attempt has been fenced: its writes are no longer accepted."""

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


class LifecycleError(AgentFailoverError, RuntimeError):
    """A client was used before it was started or after it was closed."""


class TaskError(AgentFailoverError):
    """A task handler raised; the task is reported failed with this reason."""

    def __init__(self, message: str, *, task_id: str) -> None:
        super().__init__(message)
        self.task_id = task_id


# The three classes below give the command line one exit code per class of start-up failure, and
# let an SDK user tell "fix the address" from "create the topics" from "install the extra".


class BrokerUnreachable(BrokerError):
    """No broker answered a metadata request at the bootstrap address within the connect timeout.

    The message names the address and librdkafka's last reason (refused, unresolvable host,
    TLS or SASL failure).
    """


class TopicSetupError(BrokerError):
    """Topics this client needs do not exist, or their partition counts differ from the
    configuration: run ``agent-failover topics`` (or fix the configuration)."""

    retryable = False


class MissingExtraError(AgentFailoverError, ImportError):
    """An optional part of agent-failover is not installed; the message names the pip extra."""

    def __init__(self, message: str, *, extra: str) -> None:
        super().__init__(message)
        self.extra = extra
