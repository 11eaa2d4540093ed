"""``make soak``: a seeded chaos run of a whole fleet, judged by a ledger of its own.

One concept per module: ``schedule`` (the seeded fleet, waves of tasks and faults), ``steplog``
(the ledger the agents' handler writes: one fsynced line per step side effect), ``fleet`` (the
agent and monitor processes in slots, signalled and replaced as a Deployment would), ``watch``
(what the run needs to know live), ``faults`` (firing the schedule's faults), ``run`` (the run
from start to cut), ``evidence`` (what it leaves, read back), ``verdict`` (figures and
violations, from the evidence alone), ``report`` (table, result file, exit code) and
``__main__`` (``python -m agent_failover.dev.soak``).

Nothing here is imported by the SDK or the monitor. The agent worker imports ``steplog``, so
this package's own import stays empty.
"""
