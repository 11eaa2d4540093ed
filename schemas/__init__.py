"""The JSON Schemas (2020-12) of every agent-failover record, installed as the package
``agent_failover.schemas``. Read one with :mod:`importlib.resources`::

    import importlib.resources, json

    schema = json.loads(
        importlib.resources.files("agent_failover.schemas")
        .joinpath("task.schema.json")
        .read_text()
    )
"""
