"""Waiting for something to become true: polling with a deadline, never a fixed sleep.

A fixed sleep is either too short on a loaded machine (a flaky failure) or too long everywhere
else; polling a check until a generous deadline waits exactly as long as needed and fails with a
message naming what never happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Seconds between two calls of the check: short against the waits it serves (tens of ms and up).
POLL_INTERVAL_S = 0.05


def eventually(
    check: Callable[[], T | None], timeout: float, what: str, *, interval: float = POLL_INTERVAL_S
) -> T:
    """Call ``check`` until it returns something truthy, and return that.

    Raises :class:`TimeoutError` ("timed out after N s waiting for WHAT") once ``timeout``
    seconds have passed without it. Exceptions from ``check`` propagate at once, so a check can
    fail fast (e.g. when a process it waits on has exited).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)  # the polling interval, not synchronisation: the check decides
