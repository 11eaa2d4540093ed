"""A faust worker for the broker tests, run as a subprocess (faust wants its own process).

``python -m tests.broker.faust_table_worker BOOTSTRAP APP_ID PROBE_TOPIC PATCH``

It has one table ``values`` (changelog ``<APP_ID>-values-changelog``, 1 partition, JSON keys and
values) and one agent on
``PROBE_TOPIC``. Streams resume only after table recovery, so when the agent sees a probe record
the table is recovered: it prints ``VALUE <key>=<value>`` for the probe's key and, for the fetch
wait test, ``FETCH_MAX_WAIT_MS <n>`` of the worker's aiokafka consumer. PATCH=1 turns the Tansu
fixes on (agent_failover.broker.compat) before the app is created.
"""

from __future__ import annotations

import os
import sys
from typing import Any, cast


def main(bootstrap: str, app_id: str, probe_topic: str, patch: str) -> None:
    import faust

    if patch == "1":
        from agent_failover.broker.compat import apply_faust_patches

        apply_faust_patches(bootstrap)

    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        topic_partitions=1,
        broker_session_timeout=6,  # Tansu's group join takes 23 s with client defaults
        web_enabled=False,
        store="memory://",
    )
    # JSON keys and values (faust's table default); the changelog is "<app_id>-values-changelog".
    table = app.Table("values", default=None, key_type=str, value_type=str, partitions=1)
    # A probe record's value (raw bytes) names the table key to print.
    probe = app.topic(probe_topic, value_type=bytes, value_serializer="raw", partitions=1)

    @app.agent(probe)
    async def answer(stream: Any) -> None:
        async for event in stream.events():
            key = event.value.decode()
            value = table.get(key)
            thread = cast(Any, app.consumer)._thread
            consumer = thread._ensure_consumer()
            # faust redirects sys.stdout into its log: write to the pipe directly.
            os.write(1, f"FETCH_MAX_WAIT_MS {consumer._fetcher._fetch_max_wait_ms}\n".encode())
            os.write(1, f"VALUE {key}={value}\n".encode())

    sys.argv = [
        sys.argv[0],
        "worker",
        "--without-web",
        "--loglevel",
        os.environ.get("LOGLEVEL", "warn"),
    ]
    app.main()


if __name__ == "__main__":
    main(*sys.argv[1:5])
