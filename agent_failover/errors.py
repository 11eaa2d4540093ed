"""The error hierarchy of agent-failover.

Every error the library raises derives from :class:`AgentFailoverError`; ``retryable`` says
whether trying the same call again can succeed. Where each one comes from::

    AgentFailoverError
    ├── ConfigError (ValueError)        invalid or missing settings: the configuration classes and
    │                                   their from_env(), broker selection (never retryable)
    ├── CodecError (ValueError)         a record that does not encode, decode or validate: decode(),
    │                                   a checkpoint's step or state (never retryable)
    ├── BrokerError                     the broker refused or did not answer: any Kafka call of the
    │   │                               SDK, ensure_topics(), the Tansu fixes (often retryable)
    │   ├── BrokerUnreachable           no broker answered at the bootstrap address within the
    │   │                               connect timeout: an agent's start, the CLI, ensure_topics()
    │   ├── TopicSetupError             topics missing or not as configured: an agent's start,
    │   │                               TaskSubmitter, the CLI (run `agent-failover topics`)
    │   ├── EmbeddedBrokerError         the embedded Tansu broker failed to start or stop
    │   └── KafkaContainerUnavailable   no Kafka container can run here (no Docker engine or no
    │                                   testcontainers): broker_from_env(); the tests skip on it
    ├── FencedError                     this agent epoch or task attempt was superseded: a handler's
    │                                   writes, and Agent.run() / AsyncAgent.run() (never retryable)
    ├── LifecycleError (RuntimeError)   a client used before start, after close, twice, outside a
    │                                   task handler, or with signal handling off the main thread
    ├── InternalError (RuntimeError)    a bug: a background thread died of an unexpected exception;
    │                                   Agent.run() / AsyncAgent.run() raise it (never retryable)
    ├── MissingExtraError (ImportError) an optional part is not installed: the CLI's monitor and
    │                                   broker commands; the message names the pip extra
    ├── TaskReleased                    the agent is stopping and hands the task back: raised in
    │                                   handlers by checkpoint(), progress(), raise_if_stopping()
    ├── TaskError                       never raised by the library: a handler may raise it to fail
    │                                   its task (like any exception a handler raises)
    ├── TaskFailed                      the task's outcome is a failure: a submission's result()
    └── OutcomeTimeout (TimeoutError)   no outcome yet within the time given: a submission's
                                        result() and outcome() (retryable: wait again)

Third-party errors are wrapped with ``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the records build on this module
    from agent_failover.models import TaskOutcome


class AgentFailoverError(Exception):
    """Root of every error raised by agent-failover."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ConfigError(AgentFailoverError, ValueError):
    """Configuration is invalid or incomplete."""


class Refusal(enum.StrEnum):
    """Why a record was refused, in a few words a metric can carry as a label."""

    NOT_JSON = "not_json"  # no JSON document at all (also an empty value)
    INVALID = "invalid"  # JSON that breaks the record's schema or its rules
    UNSUPPORTED_VERSION = "unsupported_version"  # a schema_version this library does not read
    TOO_LARGE = "too_large"  # over a size limit
    BAD_SIGNATURE = "bad_signature"  # a signed record whose signature does not match
    WRONG_PARTITION = "wrong_partition"  # valid, but in a partition its key does not hash to


class CodecError(AgentFailoverError, ValueError):
    """A record could not be encoded, decoded or validated against its schema.

    ``refusal`` says why, in one of a few words (:class:`Refusal`); the message gives the detail.
    """

    def __init__(
        self, message: str, *, record_type: str | None = None, refusal: Refusal = Refusal.INVALID
    ) -> None:
        super().__init__(message)
        self.record_type = record_type
        self.refusal = refusal


class BrokerError(AgentFailoverError):
    """The Kafka broker refused a request or did not answer in time."""

    retryable = True


class EmbeddedBrokerError(BrokerError):
    """The embedded development broker could not be started or stopped."""

    retryable = False


class KafkaContainerUnavailable(BrokerError):
    """A Kafka container was asked for (testcontainers) but cannot run here; ``reason`` says why.

    Not a failure of a broker that runs: no Docker engine answers, or testcontainers is not
    installed. Tests turn it into a skip.
    """

    retryable = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FencedError(AgentFailoverError):
    """This agent epoch or task attempt has been fenced: its writes are no longer accepted."""

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


class LifecycleError(AgentFailoverError, RuntimeError):
    """A client was used where or when it cannot be.

    Before it was started, after it was closed, started twice, outside the task handler it
    belongs to, or asked to handle signals off the main thread.
    """


class InternalError(AgentFailoverError, RuntimeError):
    """A bug in agent-failover: a background thread died of an unexpected exception.

    ``cause`` (also ``__cause__``) is that exception. Never retryable: the agent stopped, and
    starting it again runs the same code.
    """

    def __init__(self, message: str, *, cause: BaseException) -> None:
        super().__init__(message)
        self.cause = cause
        self.__cause__ = cause


class TaskReleased(AgentFailoverError):
    """The agent is stopping and hands this task back; let it propagate out of the handler.

    Raised by ``checkpoint()`` / ``progress()`` (after writing) and ``raise_if_stopping()`` once
    the agent is shutting down. The agent then reports the task ``released`` with its last
    checkpoint, and the monitor moves it at once.
    """

    def __init__(self, message: str, *, task_id: str) -> None:
        super().__init__(message)
        self.task_id = task_id


class TaskError(AgentFailoverError):
    """For handlers: raise it to fail the task with a reason; the library never raises it.

    The agent treats it like any other exception a handler raises: the task is reported
    ``failed`` (``"TaskError: <message>"``) and not retried.
    """

    def __init__(self, message: str, *, task_id: str) -> None:
        super().__init__(message)
        self.task_id = task_id


class TaskFailed(AgentFailoverError):
    """The task ended in failure: its handler raised (``error`` says what), or its result could
    not be carried. ``outcome`` is the task's outcome record. Failed tasks are not retried."""

    def __init__(self, message: str, *, task_id: str, error: str, outcome: TaskOutcome) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.error = error
        self.outcome = outcome


class OutcomeTimeout(AgentFailoverError, TimeoutError):
    """No outcome of the task arrived within the time given; waiting again may see it."""

    retryable = True

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
