"""Codec cost on the monitor's hot path: is a hand-written fast path worth a second definition?

``python -m bench.codec_cost [--agents 4000] [--heartbeats 100000]`` (no broker) measures:

* heartbeat decoding, per record: ``orjson.loads`` alone (the floor), the model's decoder
  (``streams.liveness.decode_heartbeat``: orjson + msgspec into ``Heartbeat``, then a
  ``LiveEntry``), and an inline check of the decoded dict (the fast path the liveness thread used
  to have, kept here only to measure what it would save);
* the fleet summary, per publish, at ``--agents`` candidates: the hand-written encoder
  (``streams.fleet.encode_summary``) against the generic one (``summarize(...).encode()``:
  a ``FleetAgent`` per agent, then orjson), and ``best_targets`` alone (shared by both).

Each figure is the best of 7 repeats (the least disturbed by other load on the machine); the
script prints them and asserts nothing: the decision and the figures are in
``docs/architecture.md`` ("Monitor hot path").
"""

from __future__ import annotations

import argparse
import platform
import timeit
from collections.abc import Callable
from typing import Any

import orjson

from agent_failover.models import SCHEMA_VERSION, Heartbeat, Pool
from agent_failover.streams.dispatch import Candidate
from agent_failover.streams.fleet import best_targets, encode_summary, summarize
from agent_failover.streams.liveness import decode_heartbeat
from agent_failover.streams.state import LiveEntry

REPEATS = 7
_POOLS = {"active": Pool.ACTIVE, "standby": Pool.STANDBY, None: Pool.ACTIVE}


def inline_heartbeat(raw: bytes) -> LiveEntry | None:
    """The common case checked inline on the decoded dict; None means "ask the model"."""
    d = orjson.loads(raw)
    if type(d) is not dict:
        return None
    agent_id, epoch, seq, cap = d.get("agent_id"), d.get("epoch"), d.get("seq"), d.get("capacity")
    in_flight, pool, draining = d.get("in_flight", ()), d.get("pool"), d.get("draining", False)
    interval = d.get("interval_s")
    if (
        type(d.get("schema_version")) is int
        and d["schema_version"] == SCHEMA_VERSION
        and type(agent_id) is str
        and agent_id
        and type(epoch) is int
        and 0 <= epoch < 2**63
        and type(seq) is int
        and seq >= 0
        and type(cap) is int
        and cap >= 0
        and type(d.get("sent_at")) is float
        and type(interval) is float
        and interval > 0
        and type(in_flight) is list
        and all(type(t) is str for t in in_flight)
        and pool in _POOLS
        and type(draining) is bool
    ):
        return LiveEntry(
            agent_id, epoch, seq, 0.0, cap, tuple(in_flight), _POOLS[pool], draining, interval
        )
    return None


def per_call(fn: Callable[[], Any], number: int) -> float:
    """Best seconds per call over REPEATS runs of ``number`` calls."""
    return min(timeit.repeat(fn, number=number, repeat=REPEATS)) / number


def candidates(n: int) -> list[Candidate]:
    """``n`` healthy agents as the monitor sees them: one standby in ten, varied load."""
    return [
        Candidate(
            f"agent-{i:05d}",
            1_700_000_000_000_000_000 + i,
            Pool.STANDBY if i % 10 == 0 else Pool.ACTIVE,
            4,
            i % 5,
        )
        for i in range(n)
    ]


def main(argv: list[str] | None = None) -> None:
    """Run the measurements and print one line per figure."""
    parser = argparse.ArgumentParser(prog="python -m bench.codec_cost", description=__doc__)
    parser.add_argument("--agents", type=int, default=4000, help="fleet summary size")
    parser.add_argument("--heartbeats", type=int, default=100_000, help="decodes per repeat")
    args = parser.parse_args(argv)

    beat = Heartbeat(
        "agent-00042", 1_700_000_000_000_000_000, 17, 1_712_345_678.123, 1.0, 4, ("t-1", "t-2")
    ).encode()
    assert inline_heartbeat(beat) == decode_heartbeat(beat)
    n = args.heartbeats
    loads = per_call(lambda: orjson.loads(beat), n)
    model = per_call(lambda: decode_heartbeat(beat), n)
    inline = per_call(lambda: inline_heartbeat(beat), n)

    local, reserved = candidates(args.agents), {}
    assert encode_summary("m", range(8), local, reserved, 1.0) == (
        summarize("m", range(8), local, reserved, 1.0).encode()
    )
    rounds = 30
    rank = per_call(lambda: best_targets(local, reserved), rounds)
    hand = per_call(lambda: encode_summary("m", range(8), local, reserved, 1.0), rounds)
    generic = per_call(lambda: summarize("m", range(8), local, reserved, 1.0).encode(), rounds)

    print(f"python {platform.python_version()} on {platform.machine()}, best of {REPEATS}")
    print(f"heartbeat decode, per record: orjson.loads alone {loads * 1e6:.2f} us")
    print(f"  model decoder (decode_heartbeat) {model * 1e6:.2f} us")
    print(f"  inline check (removed fast path) {inline * 1e6:.2f} us  ({model / inline:.2f}x)")
    print(f"  at 20,000 heartbeats/s: {model * 2e4 * 1e3:.0f} vs {inline * 2e4 * 1e3:.0f} ms/s")
    print(f"fleet summary of {args.agents} agents, per publish: best_targets {rank * 1e3:.2f} ms")
    print(f"  hand-written encode_summary {hand * 1e3:.2f} ms")
    print(f"  generic summarize().encode() {generic * 1e3:.2f} ms  ({generic / hand:.2f}x)")


if __name__ == "__main__":
    main()
