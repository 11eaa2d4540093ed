"""Environment variables as typed, bounded settings.

A :class:`Setting` knows one variable: its parser (type and bounds), documented default, who
reads it and a help line. :class:`Registry` holds them all (the registry itself is
``agent_failover.config.SETTINGS``) and gives every reader the same behaviour:

* a value that does not parse or is out of bounds raises :class:`ConfigError` naming the variable
  and quoting what the user wrote: ``AGENT_FAILOVER_HEARTBEAT_TIMEOUT must be a number of seconds
  from 0.05 to 3600, got "abc"`` (never the value of a secret);
* an ``AGENT_FAILOVER_*`` variable that is not registered is reported with the closest known
  name (a typo would otherwise be ignored without a word);
* the README's configuration table is generated from it (and a test keeps the two equal).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from agent_failover.errors import ConfigError

log = logging.getLogger("agent_failover.config")

PREFIX = "AGENT_FAILOVER_"


class Parser(Protocol):
    """Turns the text of a variable into a value; ``expect`` completes "must be ..."."""

    @property
    def expect(self) -> str: ...

    def __call__(self, raw: str) -> Any:
        """The value, or ``ValueError`` if ``raw`` is not acceptable."""

    def valid(self, value: Any) -> bool:
        """Whether a value given in code (not from the environment) is acceptable."""


def _num(value: float) -> str:
    if value != int(value):
        return f"{value:g}"
    return f"{value:,.0f}" if value >= 10_000 else f"{value:.0f}"


@dataclasses.dataclass(frozen=True)
class Number:
    """A finite number (or integer) within ``low..high``; ``low_open`` excludes ``low`` itself."""

    low: float
    high: float
    integer: bool = False
    low_open: bool = False
    unit: str = ""

    @property
    def expect(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.unit:
            kind += f" of {self.unit}"
        if self.low_open:
            return f"{kind} above {_num(self.low)}, at most {_num(self.high)}"
        return f"{kind} from {_num(self.low)} to {_num(self.high)}"

    def __call__(self, raw: str) -> int | float:
        value: int | float = int(raw) if self.integer else float(raw)
        if not self.valid(value):
            raise ConfigError(raw)
        return value

    def valid(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if not math.isfinite(value):  # inf and nan pass every comparison test one way or other
            return False
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of a few words; matched without regard to case, returned as spelled here."""

    values: tuple[str, ...]

    @property
    def expect(self) -> str:
        return "one of " + ", ".join(self.values)

    def __call__(self, raw: str) -> str:
        for value in self.values:
            if raw.lower() == value.lower():
                return value
        raise ConfigError(raw)

    def valid(self, value: Any) -> bool:
        return value in self.values


@dataclasses.dataclass(frozen=True)
class Text:
    """Free text of ``1..max_len`` characters, optionally only from ``alphabet``."""

    max_len: int = 4096
    alphabet: str | None = None
    alphabet_name: str = ""

    @property
    def expect(self) -> str:
        if self.max_len == Text.max_len and self.alphabet is None:
            return "text"
        chars = f" of {self.alphabet_name}" if self.alphabet_name else ""
        return f"1 to {self.max_len} characters{chars}"

    def __call__(self, raw: str) -> str:
        if not self.valid(raw):
            raise ConfigError(raw)
        return raw

    def valid(self, value: Any) -> bool:
        if not isinstance(value, str) or not 0 < len(value) <= self.max_len:
            return False
        return self.alphabet is None or set(value) <= set(self.alphabet)


@dataclasses.dataclass(frozen=True)
class Custom:
    """A parser written as a function (raising ``ValueError``) with its own description."""

    expect: str
    parse: Callable[[str], Any]
    check: Callable[[Any], bool] = lambda _value: True

    def __call__(self, raw: str) -> Any:
        return self.parse(raw)

    def valid(self, value: Any) -> bool:
        return self.check(value)


def seconds(low: float, high: float, *, low_open: bool = False) -> Number:
    """A duration in seconds within ``low..high``."""
    return Number(low, high, low_open=low_open, unit="seconds")


def count(high: int) -> Number:
    """An integer from 1 to ``high``."""
    return Number(1, high, integer=True)


#: A TCP port; 0 asks the system for any free one.
PORT = Number(0, 65535, integer=True)


@dataclasses.dataclass(frozen=True)
class BootstrapServers:
    """``host:port[,host:port...]``, returned without blanks."""

    expect: str = "host:port[,host:port...]"

    def __call__(self, raw: str) -> str:
        servers = [s.strip() for s in raw.split(",") if s.strip()]
        if not servers:
            raise ConfigError(raw)
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(raw)
        return ",".join(servers)

    def valid(self, value: Any) -> bool:
        try:
            return isinstance(value, str) and bool(self(value))
        except ValueError:
            return False


@dataclasses.dataclass(frozen=True)
class Setting:
    """One environment variable: ``name``, parser, documented default, readers and help."""

    name: str
    parser: Parser
    default: str  # as the README shows it (Markdown)
    used_by: str
    help: str
    secret: bool = False
    #: The configuration fields it sets, as ``owner.field`` (``agent.capacity``).
    fields: tuple[str, ...] = ()

    def parse(self, raw: str) -> Any:
        """The value of ``raw``; :class:`ConfigError` naming this variable if it is not valid."""
        try:
            return self.parser(raw.strip())
        except ValueError:
            shown = "(hidden)" if self.secret else f'"{raw}"'
            raise ConfigError(f"{self.name} must be {self.parser.expect}, got {shown}") from None

    def check(self, field: str, value: Any) -> None:
        """Validate a value set in code; the error names the field and this variable."""
        if not self.parser.valid(value):
            shown = "(hidden)" if self.secret else repr(value)
            raise ConfigError(f"{field} must be {self.parser.expect}, got {shown} ({self.name})")


class Registry:
    """Every variable agent-failover reads, by name."""

    def __init__(self, settings: Iterable[Setting]) -> None:
        self._settings = {s.name: s for s in settings}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[Setting]:
        return iter(self._settings.values())

    def __getitem__(self, name: str) -> Setting:
        return self._settings[name]

    def __contains__(self, name: object) -> bool:
        return name in self._settings

    def fields(self, owner: str) -> dict[str, str]:
        """``{field: variable}`` of the fields of ``owner`` (``agent``, ``kafka``, ...)."""
        out = {}
        for setting in self:
            for target in setting.fields:
                which, _, field = target.partition(".")
                if which == owner:
                    out[field] = setting.name
        return out

    def read(self, env: Mapping[str, str], name: str) -> Any:
        """The parsed value of ``name`` in ``env``, or None when it is unset or blank."""
        raw = env.get(name)
        if raw is None or not raw.strip():
            return None
        return self._settings[name].parse(raw)

    def read_fields(
        self, env: Mapping[str, str], fields: Mapping[str, str], skip: Iterable[str] = ()
    ) -> dict[str, Any]:
        """``{field: value}`` for every ``field -> variable`` of ``fields`` that is set."""
        skipped = set(skip)
        out = {}
        for field, name in fields.items():
            if field not in skipped and (value := self.read(env, name)) is not None:
                out[field] = value
        return out

    def check_fields(self, obj: object, fields: Mapping[str, str]) -> None:
        """Validate the attributes of ``obj`` named in ``fields`` (None means "default")."""
        for field, name in fields.items():
            value = getattr(obj, field)
            if value is not None:
                self._settings[name].check(field, value)

    def unknown(self, env: Mapping[str, str]) -> list[tuple[str, str | None]]:
        """``AGENT_FAILOVER_*`` names in ``env`` that are not registered, each with the closest
        registered name (or None)."""
        known = {n.removeprefix(PREFIX): n for n in self._settings if n.startswith(PREFIX)}
        out = []
        for name in sorted(env):
            if not name.startswith(PREFIX) or name in self._settings:
                continue
            import difflib  # here: importing it costs every SDK import a few milliseconds

            # Compare without the shared prefix: it would make every pair look alike.
            close = difflib.get_close_matches(name.removeprefix(PREFIX), known, n=1, cutoff=0.75)
            out.append((name, known[close[0]] if close else None))
        return out

    def warn_unknown(self, env: Mapping[str, str]) -> None:
        """Log one warning per unknown ``AGENT_FAILOVER_*`` variable (once per process)."""
        for name, suggestion in self.unknown(env):
            with self._lock:
                if name in self._warned:
                    continue
                self._warned.add(name)
            hint = f" (did you mean {suggestion}?)" if suggestion else ""
            log.warning("unknown variable %s is ignored%s", name, hint)

    def markdown(self) -> str:
        """The README's configuration table."""
        rows = [
            "| variable | default | values | used by | meaning |",
            "|---|---|---|---|---|",
        ]
        for s in self:
            rows.append(
                f"| `{s.name}` | {s.default} | {s.parser.expect} | {s.used_by} | {s.help} |"
            )
        return "\n".join(rows) + "\n"
