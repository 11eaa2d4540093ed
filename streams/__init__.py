"""The agent-failover monitor: a faust-streaming app over pure decision functions.

This folder installs as the package ``agent_failover.streams`` (no top-level ``streams`` that
another distribution could shadow); in a checkout, ``agent_failover/streams`` links here. The
modules below are named by their place in this folder: ``streams.x`` is
``agent_failover.streams.x``.

- :mod:`streams.state`: table values (agent records, task slots) and the liveness entry.
- :mod:`streams.detection`: health and dead-epoch detection.
- :mod:`streams.dispatch`: planning moves and applying control decisions.
- :mod:`streams.events`: applying task events and dispatches.
- :mod:`streams.intake` and :mod:`streams.assign`: new work, placed on free agents and forwarded
  once.
- :mod:`streams.liveness`: the heartbeat fast path (a plain confluent-kafka consumer thread);
  :mod:`streams.threadletters`: the records it sets aside.
- :mod:`streams.fleet`: the fleet directory: other workers' healthy agents, as targets.
- :mod:`streams.monitor`: one worker's parts wired together, and the detection tick; the parts:
  :mod:`streams.router`, :mod:`streams.index`, :mod:`streams.suspects`, :mod:`streams.firstseen`,
  :mod:`streams.ownership`, :mod:`streams.writer`, :mod:`streams.decisions`,
  :mod:`streams.reservations`, :mod:`streams.targets`, :mod:`streams.summaries`,
  :mod:`streams.recovery`, and :mod:`streams.channels` (the Kafka I/O they are given).
- :mod:`streams.metrics`: the Prometheus registry (:mod:`streams.metricsdoc` writes
  docs/metrics.md from it); :mod:`streams.http` serves it with :mod:`streams.probes`' answers;
  :mod:`streams.kafkastats` and :mod:`streams.lag` measure the consumers' lag.
- :mod:`streams.app`: ``create_app(config)``; :mod:`streams.runner`: ``run_monitor(config)``.

Nothing Kafka-related is imported here, so the pure modules import without faust.
"""
