"""Logging: one set-up for the command line, the monitor and agent processes, and librdkafka's
messages routed through Python logging, rate limited.

* :func:`setup_logging`: level and format (``text`` or ``json``) from arguments or
  ``AGENT_FAILOVER_LOG_LEVEL`` / ``AGENT_FAILOVER_LOG_FORMAT``; one handler on stderr for
  everything in the process (agent-failover, faust, mode, aiokafka, librdkafka). Secret settings
  found in the environment are masked in every line it writes, and the Kafka clients' lines
  (librdkafka's and aiokafka's) are rate limited there too.
* :func:`kafka_log_settings`: the ``logger`` setting for a confluent-kafka client, so librdkafka's
  lines become log records of ``agent_failover.librdkafka.<role>`` instead of raw stderr lines.
  A broker outage makes every client print a line per reconnect attempt (about a hundred a
  second); :class:`RateLimitFilter` lets :data:`BURST` lines of each message through per
  :data:`INTERVAL` and then says how many similar lines it suppressed. Note that a client serves
  its log lines from ``poll()`` (producers and admin clients too).

An application embedding the SDK keeps its own logging set-up; only the ``logger`` setting of the
SDK's clients (and their rate limit) applies there.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from agent_failover.config import SETTINGS

#: Lines of one message (digits ignored) let through per interval.
BURST = 5
#: Seconds of a rate-limit window.
INTERVAL = 60.0
#: Parent of the loggers librdkafka's lines go to.
LIBRDKAFKA_LOGGER = "agent_failover.librdkafka"
#: Secrets shorter than this are not masked (masking them would mangle ordinary words).
_MIN_SECRET = 4

_DIGITS = re.compile(r"\d+")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RateLimitFilter(logging.Filter):
    """Let at most ``burst`` records of each message through per ``interval`` seconds.

    Records are "similar" when they share logger, level and text once digits are ignored (a
    reconnect line differs only in its timings). The first record after a window in which some
    were dropped is preceded by one line: ``suppressed N similar messages in the last S s: ...``.
    ``applies_to`` (a logger name test) limits the filter to some loggers, for use on a handler.
    A line whose text comes from outside (the reason a bad record was refused: whoever wrote the
    record chooses it) names its kind instead, with ``extra=`` :func:`similar` ``(kind)``: lines
    of one kind are then similar whatever their text.
    """

    _MAX_KEYS = 1024

    def __init__(
        self,
        burst: int = BURST,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        applies_to: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._applies_to = applies_to
        self._lock = threading.Lock()
        # key -> [window start, records let through, records dropped]
        self._windows: dict[tuple[str, int, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "af_summary", False):
            return True
        if self._applies_to is not None and not self._applies_to(record.name):
            return True
        kind = getattr(record, _KIND, None)
        text = kind if isinstance(kind, str) else _DIGITS.sub("#", record.getMessage())
        key = (record.name, record.levelno, text)
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window[0] >= self.interval:
                dropped = int(window[2]) if window is not None else 0
                self._windows[key] = [now, 1, 0]
                if len(self._windows) > self._MAX_KEYS:
                    self._forget_expired(now)
            elif window[1] < self.burst:
                window[1] += 1
                dropped = 0
            else:
                window[2] += 1
                return False
        if dropped:
            self._summarise(record, key[2], dropped)
        return True

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, w in self._windows.items() if now - w[0] >= self.interval]:
            del self._windows[key]

    def _summarise(self, record: logging.LogRecord, text: str, dropped: int) -> None:
        summary = logging.LogRecord(
            record.name,
            record.levelno,
            record.pathname,
            record.lineno,
            "suppressed %d similar messages in the last %g s: %s",
            (dropped, self.interval, text[:160]),
            None,
        )
        summary.af_summary = True
        logging.getLogger(record.name).handle(summary)


_rate_limit = RateLimitFilter()

#: The log record attribute naming a line's kind for the rate limit (see :func:`similar`).
_KIND = "af_rate_kind"


def similar(kind: str) -> dict[str, str]:
    """``extra=`` for a rate-limited line whose text varies with its input: every line of
    ``kind`` counts as the same message."""
    return {_KIND: kind}


def is_client_logger(name: str) -> bool:
    """Loggers of Kafka clients, which repeat a line per reconnect attempt during an outage:
    librdkafka's (any ``*.librdkafka*`` logger) and aiokafka's (faust's client)."""
    return name == "aiokafka" or name.startswith("aiokafka.") or "librdkafka" in name


def rate_limited(name: str) -> logging.Logger:
    """The logger ``name``, its lines rate limited like the Kafka clients' (:data:`BURST` lines of
    each message per :data:`INTERVAL`): for lines a stream of bad records would repeat."""
    logger = logging.getLogger(name)
    # A logger's filters see only records logged on it, not its children's: one per logger.
    if _rate_limit not in logger.filters:
        logger.addFilter(_rate_limit)
    return logger


def kafka_log_settings(role: str) -> dict[str, Any]:
    """confluent-kafka settings that send a client's log lines to Python logging, rate limited.

    ``role`` names the logger (``agent_failover.librdkafka.<role>``): ``producer``,
    ``consumer``, ``admin``, ``liveness``, ... Merge the result into the client's configuration.
    """
    return {"logger": rate_limited(f"{LIBRDKAFKA_LOGGER}.{role}")}


class DemotedLogger(logging.LoggerAdapter[logging.Logger]):
    """Logs everything at DEBUG: for a client whose failures are reported another way (a probe
    that raises an error naming the broker), so its reconnect lines do not repeat that error."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        self.logger.log(logging.DEBUG, msg, *args, **kwargs)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    and ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


class _Masking(logging.Formatter):
    """Wraps a formatter and replaces secret values in whatever it produced."""

    def __init__(self, inner: logging.Formatter, secrets: list[str]) -> None:
        super().__init__()
        self._inner = inner
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        text = self._inner.format(record)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _secrets(env: Mapping[str, str]) -> list[str]:
    values = [env.get(s.name, "") for s in SETTINGS if s.secret]
    # A secret given as a file (AGENT_FAILOVER_SIGNING_KEY_FILE): its content is masked too.
    for setting in SETTINGS:
        base = setting.name.removesuffix("_FILE")
        if base != setting.name and base in SETTINGS and SETTINGS[base].secret:
            with contextlib.suppress(OSError, ValueError):
                values.append(Path(env.get(setting.name, "")).read_text().strip())
    # The JSON form of a secret differs from its raw form when it has quotes or backslashes.
    escaped = [orjson.dumps(v).decode()[1:-1] for v in values]
    return sorted({v for v in values + escaped if len(v) >= _MIN_SECRET}, key=len, reverse=True)


def setup_logging(
    level: str | int | None = None,
    fmt: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stream: IO[str] | None = None,
) -> str:
    """Configure the process's logging: one stderr handler, ``level`` and ``fmt`` (``text`` or
    ``json``), else ``AGENT_FAILOVER_LOG_LEVEL`` / ``AGENT_FAILOVER_LOG_FORMAT``, else INFO and
    text. Replaces handlers configured before (safe to call again). Returns the format used.

    Raises :class:`~agent_failover.errors.ConfigError` naming the variable for a bad value.
    """
    env = os.environ if env is None else env
    if level is None:
        level = SETTINGS.read(env, "AGENT_FAILOVER_LOG_LEVEL") or "INFO"
    elif isinstance(level, str):
        level = SETTINGS["AGENT_FAILOVER_LOG_LEVEL"].parse(level)
    fmt = SETTINGS.read(env, "AGENT_FAILOVER_LOG_FORMAT") if fmt is None else fmt
    fmt = SETTINGS["AGENT_FAILOVER_LOG_FORMAT"].parse(fmt or "text")
    inner = JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_Masking(inner, _secrets(env)))
    # Also for clients whose logger this package does not set (faust's aiokafka, and any
    # librdkafka logger of the monitor's own).
    handler.addFilter(RateLimitFilter(applies_to=is_client_logger))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    return str(fmt)
