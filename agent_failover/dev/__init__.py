"""Development harness: the demo, its agent processes, a local process supervisor and the ledger."""
