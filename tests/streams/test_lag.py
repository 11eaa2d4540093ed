"""The faust agent's consumer lag: fetch high watermarks minus what the agent handled."""

from __future__ import annotations

import asyncio
import dataclasses

from agent_failover.streams.lag import ConsumerLag


@dataclasses.dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class FakeConsumer:
    def __init__(self, highwaters: dict[TP, int | None], positions: dict[TP, int]) -> None:
        self.highwaters, self.positions = highwaters, positions

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)

    async def position(self, tp: TP) -> int | None:
        return self.positions.get(tp)


EV0, EV1, CTL0, OTHER = TP("x.ev", 0), TP("x.ev", 1), TP("x.ctl", 0), TP("x.changelog", 0)


def test_lag_is_the_highwater_minus_the_next_record_to_handle_per_topic() -> None:
    lag = ConsumerLag({"x.ev": "task-events", "x.ctl": "control", "x.pri": "tasks.priority"})
    consumer = FakeConsumer({EV0: 10, EV1: 5, CTL0: None, OTHER: 99}, {EV0: 10, EV1: 2})
    assigned = [EV0, EV1, CTL0, OTHER]
    # Nothing handled yet: the fetch position stands in; nothing fetched: no figure.
    got = asyncio.run(lag.measure(consumer, assigned))
    assert got == {"task-events": 0 + 3, "control": 0, "tasks.priority": 0}
    lag.handled("x.ev", 0, 6)  # the agent is at offset 7 of partition 0, fetched up to 10
    assert asyncio.run(lag.measure(consumer, assigned))["task-events"] == 3 + 3


def test_offsets_of_a_previous_assignment_are_forgotten() -> None:
    lag = ConsumerLag({"x.ev": "task-events"})
    consumer = FakeConsumer({EV0: 10, EV1: 10}, {EV0: 10, EV1: 10})
    asyncio.run(lag.measure(consumer, [EV0, EV1]))
    lag.handled("x.ev", 0, 1)
    lag.handled("x.ev", 1, 1)
    assert asyncio.run(lag.measure(consumer, [EV0, EV1])) == {"task-events": 16}
    # EV1 went away and came back: its old offset says nothing; EV0 was held throughout.
    asyncio.run(lag.measure(consumer, [EV0]))
    assert asyncio.run(lag.measure(consumer, [EV0, EV1])) == {"task-events": 8}
