"""``make soak``: a seeded chaos run of a whole fleet, judged by a ledger of its own.

One concept per module: ``steplog`` (the ledger the agents' handler writes, one fsynced line per
step side effect), ``schedule`` (the seeded waves of tasks and faults), ``fleet`` (the agent and
monitor processes, signalled and replaced as a Deployment would), ``run`` (the run itself, and
what it collects), ``verdict`` (the figures and violations, computed from that evidence alone),
``report`` (the table and the JSON result) and ``__main__`` (the command line).

Nothing here is imported by the SDK or the monitor; this package's import stays cheap because
the agent worker imports ``steplog`` from it.
"""
