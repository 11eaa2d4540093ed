"""The soak's own ledger: one line per step side effect, on disk before the step's checkpoint.

The agent worker's handler writes it when ``AGENT_FAILOVER_DEMO_LEDGER_DIR`` names a directory:
one file per agent process (``<agent id>.<pid>.jsonl``), one JSON line per executed step, written
and fsynced *after* the step's side effect and *before* its checkpoint. It does not go through
the broker or the SDK, so it records what the handler really did, whatever the product believes.

A process killed while writing can leave a last line without its newline: that step's checkpoint
was never written either, so the reader drops the line and counts it (``torn``). Anything else
that is not a step line is an error naming the file and the line.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import msgspec
import orjson

from agent_failover.errors import CodecError, LifecycleError

#: The variable that turns the ledger on in the agent worker (a directory, created if needed).
LEDGER_DIR_ENV = "AGENT_FAILOVER_DEMO_LEDGER_DIR"


@dataclasses.dataclass(frozen=True)
class StepLine:
    """One executed step: which attempt of which task, by which agent epoch, when, and its output.

    ``at`` is the agent's wall clock when the side effect was recorded (``time.time()``);
    ``digest`` is the step's output, which also depends on the state the step started from.
    """

    task_id: str
    attempt: int
    agent_id: str
    epoch: int
    step: int
    at: float
    digest: str

    def encode(self) -> bytes:
        """The line's JSON, without the newline."""
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> StepLine:
        """Parse one line; :class:`CodecError` if it is not a step line."""
        try:
            return msgspec.convert(orjson.loads(raw), type=cls, strict=True)
        except (orjson.JSONDecodeError, msgspec.ValidationError) as exc:
            raise CodecError(f"not a step line: {exc}") from exc


class StepLog:
    """The ledger file of this process; thread-safe (handlers run in threads of their own)."""

    def __init__(self, directory: Path, agent_id: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{agent_id}.{os.getpid()}.jsonl"
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def record(
        self, *, task_id: str, attempt: int, agent_id: str, epoch: int, step: int, digest: str
    ) -> StepLine:
        """Append one step line and fsync it; returns the line written.

        Raises :class:`LifecycleError` after :meth:`close` (a handler still running when its
        agent gave up waiting for it), ``OSError`` if the disk refuses the write.
        """
        with self._lock:
            if self._fd is None:
                raise LifecycleError(f"step ledger {self.path} is closed")
            line = StepLine(task_id, attempt, agent_id, epoch, step, time.time(), digest)
            data = line.encode() + b"\n"
            while data:  # a regular file takes it all at once; a short write would lose the rest
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        return line

    def close(self) -> None:
        """Close the file (lines already recorded are on disk); idempotent."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


@dataclasses.dataclass(frozen=True)
class StepLogs:
    """Every step line of a ledger directory, and how many torn last lines were dropped."""

    lines: tuple[StepLine, ...]
    files: int
    torn: int


def read_step_logs(directory: Path) -> StepLogs:
    """Read every ``*.jsonl`` file of ``directory`` (none yet: no lines).

    Raises :class:`CodecError` naming the file and line of a line that is not a step line,
    unless it is the last one and lacks its newline (a write cut by SIGKILL: dropped, counted).
    """
    lines: list[StepLine] = []
    torn = 0
    paths = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    for path in paths:
        raw = path.read_bytes()
        chunks = raw.split(b"\n")
        if chunks[-1]:
            torn += 1  # the last line has no newline: its write was cut short
        for number, chunk in enumerate(chunks[:-1], start=1):
            if not chunk:
                continue
            try:
                lines.append(StepLine.decode(chunk))
            except CodecError as exc:
                raise CodecError(f"{path}, line {number}: {exc}") from exc
    return StepLogs(lines=tuple(lines), files=len(paths), torn=torn)
