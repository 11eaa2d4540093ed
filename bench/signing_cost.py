"""The cost of record signatures on the heartbeat hot path (no broker).

``python -m bench.signing_cost [--records 100000]`` measures, per heartbeat record:

* the agent's side: the signature headers of one record (``Signer.headers``);
* the monitor's side: what the heartbeat thread does with one consumed record
  (``live_entry(signer.open(Heartbeat, msg))``), with a key (signature checked, then decoded)
  and without one (decoded only): the difference is what checking costs;
* HMAC-SHA256 of the same bytes computed two ways: one-shot ``hmac.digest`` with the key, and
  copying a pre-keyed HMAC object (what ``Signer`` does: the key schedule is paid once).

Each figure is the best of 7 repeats (the least disturbed by other load on the machine); the
figures and what they mean are in ``docs/security.md`` ("Cost").
"""

from __future__ import annotations

import argparse
import hmac
import platform
import timeit
from collections.abc import Callable
from typing import Any

from confluent_kafka import Message

from agent_failover.models import Heartbeat
from agent_failover.signing import Signer, signed_bytes
from agent_failover.streams.liveness import live_entry

REPEATS = 7
KEY = b"bench-fleet-key-0123456789abcdef"


def per_call(fn: Callable[[], Any], number: int) -> float:
    """Best seconds per call over REPEATS runs of ``number`` calls."""
    return min(timeit.repeat(fn, number=number, repeat=REPEATS)) / number


def main(argv: list[str] | None = None) -> None:
    """Run the measurements and print one line per figure."""
    parser = argparse.ArgumentParser(prog="python -m bench.signing_cost", description=__doc__)
    parser.add_argument("--records", type=int, default=100_000, help="calls per repeat")
    args = parser.parse_args(argv)
    n = args.records

    topic, key = "af.heartbeats", b"agent-00042"
    beat = Heartbeat(
        "agent-00042", 1_700_000_000_000_000_000, 17, 1_712_345_678.123, 1.0, 4, ("t-1", "t-2")
    ).encode()
    signer, off = Signer(KEY), Signer()
    headers = signer.headers(topic, key, beat)
    msg = Message(topic=topic, partition=0, offset=1, key=key, value=beat, headers=headers)  # type: ignore[arg-type]
    assert live_entry(signer.open(Heartbeat, msg)) == live_entry(off.open(Heartbeat, msg))

    sign = per_call(lambda: signer.headers(topic, key, beat), n)
    checked = per_call(lambda: live_entry(signer.open(Heartbeat, msg)), n)
    unchecked = per_call(lambda: live_entry(off.open(Heartbeat, msg)), n)
    keyed = hmac.new(KEY, None, "sha256")

    def copied() -> bytes:
        mac = keyed.copy()
        mac.update(signed_bytes(topic, key, beat))
        return mac.digest()

    one_shot = per_call(lambda: hmac.digest(KEY, signed_bytes(topic, key, beat), "sha256"), n)
    pre_keyed = per_call(copied, n)

    print(f"python {platform.python_version()} on {platform.machine()}, best of {REPEATS}")
    print(f"heartbeat of {len(beat)} bytes, per record:")
    print(f"  agent: sign (headers) {sign * 1e6:.2f} us")
    print(
        f"  monitor: check + decode {checked * 1e6:.2f} us, decode alone {unchecked * 1e6:.2f} us"
    )
    cost = checked - unchecked
    print(f"  checking costs {cost * 1e6:.2f} us: {cost * 2e4 * 1e3:.0f} ms/s at 20,000 beats/s")
    print(f"  HMAC one-shot {one_shot * 1e6:.2f} us, pre-keyed copy {pre_keyed * 1e6:.2f} us")


if __name__ == "__main__":
    main()
