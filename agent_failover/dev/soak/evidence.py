"""What a soak leaves behind, and reading it back: the soak's records, its ledger, the topics.

:class:`Evidence` is all the verdict may use: the schedule, the processes and what was done to
them (the soak's own records), the step ledger the agents' handler wrote, and the records of
task-events, control, tasks.priority, checkpoints, heartbeats and outcomes read back to their high
watermark after every process was stopped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent_failover import models as m
from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.reading import read_topic
from agent_failover.dev.soak.faults import FaultRecord
from agent_failover.dev.soak.fleet import ProcessRecord
from agent_failover.dev.soak.schedule import Schedule
from agent_failover.dev.soak.steplog import StepLogs, read_step_logs
from agent_failover.errors import CodecError


@dataclasses.dataclass
class Evidence:
    """Everything one soak run left, in the order it was written (per partition).

    Times are wall clock (``time.time()``) of whoever wrote them: the soak (process records),
    the agents (ledger lines, events), the monitor (``issued_at``). The soak compares them with
    each other, which holds because every process runs on this one machine and reads the same
    clock; nothing in the product may compare clocks of different processes like that.
    """

    schedule: Schedule
    started_at: float  # the fleet was ready
    cut_at: float  # the end of the run, just before every process was killed
    drained: bool  # every task completed before the drain deadline
    processes: list[ProcessRecord]
    faults: list[FaultRecord]
    steps: StepLogs
    events: list[m.TaskEvent]
    control: list[m.Control]
    redispatches: list[m.Redispatch]
    checkpoints: list[m.Checkpoint]
    #: The newest heartbeat of each epoch.
    heartbeats: list[m.Heartbeat]
    #: The monitor's outcomes (the first per task counts for submitters).
    outcomes: list[m.TaskOutcome] = dataclasses.field(default_factory=list)
    #: Records that could not be decoded, per topic.
    undecodable: dict[str, int] = dataclasses.field(default_factory=dict)
    #: The box's 1-minute load average when the fleet was ready and at the end.
    load: tuple[float, float] = (0.0, 0.0)

    def summary(self) -> dict[str, Any]:
        """What the result file keeps of it: not the records themselves."""
        return {
            "started_at": self.started_at,
            "cut_at": self.cut_at,
            "drained": self.drained,
            "load": list(self.load),
            "processes": [dataclasses.asdict(p) for p in self.processes],
            "faults": [dataclasses.asdict(f) for f in self.faults],
            "records": {
                "ledger_lines": len(self.steps.lines),
                "ledger_files": self.steps.files,
                "task_events": len(self.events),
                "control": len(self.control),
                "redispatches": len(self.redispatches),
                "checkpoints": len(self.checkpoints),
                "heartbeat_epochs": len(self.heartbeats),
                "outcomes": len(self.outcomes),
                "undecodable": self.undecodable,
            },
        }


def read_back(kafka: KafkaConfig | str, topics: Topics, ledger_dir: Path, **known: Any) -> Evidence:
    """Read the ledger and the topics to their high watermark; ``known``: the other fields."""
    decoders: dict[str, Callable[[bytes], Any]] = {
        topics.task_events: m.TaskEvent.decode,
        topics.control: m.Control.decode,
        topics.priority: m.Redispatch.decode,
        topics.checkpoints: m.Checkpoint.decode,
        topics.heartbeats: m.Heartbeat.decode,
        topics.outcomes: m.TaskOutcome.decode,
    }
    recs = read_topic(kafka, list(decoders), timeout=120.0)
    recs.sort(key=lambda r: (r.topic, r.partition, r.offset))
    decoded: dict[str, list[Any]] = {topic: [] for topic in decoders}
    undecodable: dict[str, int] = {}
    for rec in recs:
        try:
            decoded[rec.topic].append(decoders[rec.topic](rec.value or b""))
        except CodecError:
            undecodable[rec.topic] = undecodable.get(rec.topic, 0) + 1
    newest: dict[tuple[str, int], m.Heartbeat] = {}
    for beat in decoded[topics.heartbeats]:
        key = (beat.agent_id, beat.epoch)
        if key not in newest or beat.seq > newest[key].seq:
            newest[key] = beat
    return Evidence(
        steps=read_step_logs(ledger_dir),
        events=decoded[topics.task_events],
        control=decoded[topics.control],
        redispatches=decoded[topics.priority],
        checkpoints=decoded[topics.checkpoints],
        heartbeats=list(newest.values()),
        outcomes=decoded[topics.outcomes],
        undecodable=undecodable,
        **known,
    )
