"""Development harness: the demo, its agent processes, a local process supervisor and the ledger.

The toolkit the demo, the tests and the benchmarks share, one concept per module:
``processes`` (children that die with their parent, signals, stop), ``waiting`` (polling with a
deadline), ``reading`` (topics read to their high watermark, or tailed live) and ``victim``
(choosing the busiest agent to kill). The ``soak`` package runs a seeded chaos run on them
(``make soak``, docs/reliability.md).
"""
