"""The soak's ledger file and the agent worker's handler that writes it (no broker)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent_failover.config import CheckpointPolicy
from agent_failover.dev.soak.steplog import StepLine, StepLog, read_step_logs
from agent_failover.dev.worker import make_handler, step_digest
from agent_failover.errors import CodecError, LifecycleError
from agent_failover.models import Checkpoint, Task
from agent_failover.sdk.context import TaskContext
from agent_failover.sdk.kafka import DeliveryFuture
from agent_failover.sdk.testing import InMemorySink, bind


def record(log: StepLog, step: int, task_id: str = "t1") -> StepLine:
    return log.record(task_id=task_id, attempt=1, agent_id="a", epoch=7, step=step, digest="d")


def test_lines_from_many_threads_are_read_back_whole(tmp_path: Path) -> None:
    log = StepLog(tmp_path, "agent-1")
    threads = [
        threading.Thread(target=lambda t=t: [record(log, s, f"t{t}") for s in range(50)])
        for t in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()

    logs = read_step_logs(tmp_path)
    assert (logs.files, logs.torn, len(logs.lines)) == (1, 0, 200)
    for t in range(4):
        assert [x.step for x in logs.lines if x.task_id == f"t{t}"] == list(range(50))


def test_a_last_line_cut_by_a_kill_is_dropped_and_counted(tmp_path: Path) -> None:
    log = StepLog(tmp_path, "agent-1")
    written = record(log, 0)
    log.close()
    with log.path.open("ab") as f:
        f.write(b'{"task_id": "t1", "attempt": 1, "ag')
    logs = read_step_logs(tmp_path)
    assert logs.lines == (written,)
    assert logs.torn == 1


def test_a_bad_line_elsewhere_names_its_file_and_line(tmp_path: Path) -> None:
    log = StepLog(tmp_path, "agent-1")
    record(log, 0)
    log.close()
    with log.path.open("ab") as f:
        f.write(b'{"task_id": "t1"}\n')
    record_after = StepLog(tmp_path, "agent-1")  # the same process appends to the same file
    record(record_after, 1)
    with pytest.raises(CodecError, match=rf"{log.path.name}, line 2: not a step line"):
        read_step_logs(tmp_path)


def test_no_directory_yet_means_no_lines(tmp_path: Path) -> None:
    logs = read_step_logs(tmp_path / "nothing-here")
    assert (logs.lines, logs.files, logs.torn) == ((), 0, 0)


def test_a_closed_ledger_refuses_to_record(tmp_path: Path) -> None:
    log = StepLog(tmp_path, "agent-1")
    log.close()
    log.close()  # idempotent
    with pytest.raises(LifecycleError, match="closed"):
        record(log, 0)


class LedgerCheckingSink(InMemorySink):
    """Checks, as each checkpoint arrives, that the ledger already holds its step."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    def send_checkpoint(self, task_id: str, value: bytes) -> DeliveryFuture:
        step = Checkpoint.decode(value).step
        recorded = {x.step for x in read_step_logs(self.directory).lines}
        assert step in recorded, f"checkpoint of step {step} before its ledger line"
        return super().send_checkpoint(task_id, value)


def test_the_worker_records_each_step_before_its_checkpoint(tmp_path: Path) -> None:
    log = StepLog(tmp_path, "agent-1")
    handler = make_handler(None, "", (0.0, 0.0), ledger=log)
    task = Task(task_id="t1", task_type="demo", payload={"steps": 4})
    sink = LedgerCheckingSink(tmp_path)
    ctx = TaskContext(
        task=task, attempt=1, agent_id="agent-1", epoch=42, sink=sink, policy=CheckpointPolicy()
    )
    with bind(ctx):
        handler(ctx)

    lines = read_step_logs(tmp_path).lines
    assert [(x.step, x.attempt, x.agent_id, x.epoch) for x in lines] == [
        (s, 1, "agent-1", 42) for s in range(4)
    ]
    previous = ""
    for line in lines:  # each output is derived from the previous step's output
        assert line.digest == step_digest("t1", line.step, previous)
        previous = line.digest
    assert [c.step for c in sink.checkpoints] == [0, 1, 2, 3]
