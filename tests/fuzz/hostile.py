"""Hypothesis strategies for the records every reader meets: valid ones of each type, and hostile
ones made from them.

A hostile record starts from a valid one and breaks or stretches it: a tombstone, an empty
value, bytes that are not JSON, a value that is JSON but no object, a field missing, of the wrong
type, or holding an integer beyond 2^63 or 2^64, a string with a lone surrogate or control
characters, a value nested up to 1,024 levels, fields nobody knows, a schema version nobody
reads, a value or a key near the broker's 1 MB record limit, an empty key, a key that is no UTF-8,
a partition its key does not hash to. Some of these are still valid records (extra fields,
control characters, a huge key): which ones is for the reader to say, and the tests use the
model's decoder as the judge of validity, never the code under test's handling.

JSON that ``orjson.dumps`` cannot write (integers beyond 64 bits, lone surrogates, 1,024 levels)
is spliced in as text: a value is written with a marker string where the raw text goes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agent_failover import models as m
from agent_failover.config import KafkaConfig, Topics
from agent_failover.errors import CodecError, Refusal
from agent_failover.partitioner import partition_for
from agent_failover.signing import Signer

#: Examples per property: AGENT_FAILOVER_FUZZ_EXAMPLES raises it for a deeper run.
EXAMPLES = int(os.environ.get("AGENT_FAILOVER_FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(default: int) -> settings:
    """Derandomized (the same examples on every run, in CI too), no deadline (a 1 MB record
    takes milliseconds), ``default`` examples unless the environment asks for more."""
    return settings(
        derandomize=EXAMPLES == 0,
        deadline=None,
        max_examples=EXAMPLES or default,
        suppress_health_check=list(settings.default.suppress_health_check),
    )


def sample(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """Up to ``count`` examples hypothesis draws from ``strategy``, the same on every run (more
    with AGENT_FAILOVER_FUZZ_EXAMPLES): for a test too slow to run once per example, such as one
    against the broker, which then holds for all of them at once."""
    drawn: list[Any] = []

    @settings(
        max_examples=max(count, EXAMPLES),
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        drawn.append(example)

    collect()
    return drawn


#: A record's key and value stay below this together: the broker's limit, less its overhead.
NEAR_LIMIT = 1_040_000

#: The topic set, the fleet's configuration (it signs) and someone else's key, for every test.
TOPICS = Topics(prefix="x.", agent_partitions=4, task_partitions=2)
KAFKA = KafkaConfig("127.0.0.1:9", signing_key="the-fleet-signing-key-0123456789")
FLEET = KAFKA.signer
STRANGER = Signer(b"a-key-of-someone-else-0123456789")

#: For a list of records: whether each one is signed by a stranger (about one in twelve).
forgeries = st.lists(st.integers(0, 11).map(lambda n: n == 0), max_size=20)
#: For a producer's records in turn: taken (0), refused at once (1), refused by the broker (2).
fates = st.lists(st.integers(0, 2), max_size=20)


def forged_at(forged: list[bool], n: int) -> bool:
    """Whether the ``n``-th record is signed by a stranger (not when ``forged`` ran out)."""
    return n < len(forged) and forged[n]


def signer(forged: bool) -> Signer:
    return STRANGER if forged else FLEET


AGENTS = ("a0", "a1", "a2", "a3")
TASKS = ("t0", "t1", "t2")


@dataclasses.dataclass(frozen=True)
class Raw:
    """A record as it arrives: key, value and the partition it was read from; ``why`` says what
    was done to it (shown when a property fails)."""

    key: bytes | None
    value: bytes | None
    partition: int
    why: str

    def __repr__(self) -> str:
        def short(b: bytes | None) -> str:
            return "None" if b is None else repr(b[:60]) + (f"..({len(b)})" if len(b) > 60 else "")

        return (
            f"Raw({self.why}, p={self.partition}, key={short(self.key)}, value={short(self.value)})"
        )


# --- valid records ---------------------------------------------------------------------------

odd_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12
)  # control characters, NUL, any plane: valid JSON strings
ids_or_odd = st.one_of(st.sampled_from(AGENTS), odd_text)
epochs = st.one_of(st.integers(1, 5), st.just(m.MAX_INT63))
times = st.floats(allow_nan=False, allow_infinity=False, width=64)
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    odd_text,
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(odd_text, inner, max_size=3)
    ),
    max_leaves=8,
)


task_ids = st.sampled_from(TASKS)


def tasks(ids: st.SearchStrategy[str] = task_ids) -> st.SearchStrategy[m.Task]:
    return st.builds(
        m.Task,
        task_id=ids,
        task_type=st.sampled_from(("demo", "x\x00y")),
        payload=json_values,
        submitted_at=st.none() | times,
    )


def refs(task_id: str, attempt: int, epoch: int) -> st.SearchStrategy[m.CheckpointRef]:
    return st.builds(
        m.CheckpointRef,
        partition=st.integers(0, 3),
        offset=st.integers(0, 2**63 - 1),
        step=st.integers(0, 50),
        task_id=st.just(task_id),
        attempt=st.just(attempt),
        epoch=st.just(epoch),
    )


@st.composite
def heartbeats(draw: st.DrawFn, agent_ids: st.SearchStrategy[str] = ids_or_odd) -> m.Heartbeat:
    return m.Heartbeat(
        agent_id=draw(agent_ids),
        epoch=draw(epochs),
        seq=draw(st.integers(0, 2**64 - 1)),
        sent_at=draw(times),
        interval_s=draw(st.floats(0.01, 60)),
        capacity=draw(st.integers(0, 2**64 - 1)),
        in_flight=tuple(draw(st.lists(st.sampled_from(TASKS), max_size=3, unique=True))),
        pool=draw(st.sampled_from(m.Pool)),
        draining=draw(st.booleans()),
    )


@st.composite
def task_events(draw: st.DrawFn, agent_ids: st.SearchStrategy[str] = ids_or_odd) -> m.TaskEvent:
    kind = draw(st.sampled_from(m.EventKind))
    agent, epoch = draw(agent_ids), draw(epochs)
    if kind in (m.EventKind.AGENT_STARTED, m.EventKind.AGENT_STOPPED):
        return m.TaskEvent(
            kind=kind,
            agent_id=agent,
            epoch=epoch,
            at=draw(times),
            capacity=draw(st.integers(0, 8)),
            pool=draw(st.sampled_from(m.Pool)),
        )
    task = draw(tasks())
    attempt = draw(st.integers(1, 3))
    checkpoint = None
    if kind in (m.EventKind.CHECKPOINTED, m.EventKind.RELEASED):
        checkpoint = draw(refs(task.task_id, attempt, epoch))
    return m.TaskEvent(
        kind=kind,
        agent_id=agent,
        epoch=epoch,
        at=draw(times),
        task_id=task.task_id,
        attempt=attempt,
        task=task if kind in (m.EventKind.CLAIMED, m.EventKind.RELEASED) else None,
        checkpoint=checkpoint,
        error=draw(odd_text) if kind is m.EventKind.FAILED else None,
    )


@st.composite
def plan_entries(draw: st.DrawFn) -> m.PlanEntry:
    task_id, attempt = draw(st.sampled_from(TASKS)), draw(st.integers(2, 4))
    placed = draw(st.booleans())
    earlier = draw(st.none() | refs(task_id, attempt - 1, draw(epochs)))
    return m.PlanEntry(
        task_id=task_id,
        attempt=attempt,
        target_agent_id=draw(st.sampled_from(AGENTS)) if placed else None,
        target_epoch=draw(epochs) if placed else None,
        checkpoint=earlier,
    )


@st.composite
def controls(draw: st.DrawFn, agent_ids: st.SearchStrategy[str] = ids_or_odd) -> m.Control:
    kind = draw(st.sampled_from(m.ControlKind))
    moves = kind in (m.ControlKind.FENCE, m.ControlKind.DISPATCH)
    reasons = [r for r in m.DispatchReason if r is not m.DispatchReason.NEW]
    return m.Control(
        kind=kind,
        agent_id=draw(agent_ids),
        epoch=draw(epochs),
        decision_id=draw(st.sampled_from(("d0", "d1", "d2"))),
        issued_at=draw(times),
        reason=draw(st.sampled_from(reasons)) if moves else None,
        plan=tuple(draw(st.lists(plan_entries(), max_size=3))) if moves else (),
        monitor_id=draw(st.none() | odd_text),
    )


@st.composite
def redispatches(
    draw: st.DrawFn,
    agent_ids: st.SearchStrategy[str] = ids_or_odd,
    new: bool | None = None,
    source_partition: int = 0,
) -> m.Redispatch:
    is_new = draw(st.booleans()) if new is None else new
    task = draw(tasks())
    if is_new:
        return m.Redispatch(
            task=task,
            attempt=1,
            target_agent_id=draw(agent_ids),
            target_epoch=draw(epochs),
            reason=m.DispatchReason.NEW,
            decision_id=draw(st.sampled_from(("n0", "n1"))),
            dispatched_at=draw(times),
            source=m.SourceRef(partition=source_partition, offset=draw(st.integers(0, 20))),
        )
    attempt = draw(st.integers(2, 4))
    reasons = [r for r in m.DispatchReason if r is not m.DispatchReason.NEW]
    return m.Redispatch(
        task=task,
        attempt=attempt,
        target_agent_id=draw(agent_ids),
        target_epoch=draw(epochs),
        reason=draw(st.sampled_from(reasons)),
        decision_id=draw(st.sampled_from(("r0", "r1"))),
        dispatched_at=draw(times),
        from_agent_id=draw(st.sampled_from(AGENTS)),
        from_epoch=draw(epochs),
        checkpoint=draw(st.none() | refs(task.task_id, attempt - 1, draw(epochs))),
        last_heartbeat_age_s=draw(st.none() | st.floats(0, 100)),
    )


def checkpoints() -> st.SearchStrategy[m.Checkpoint]:
    return st.builds(
        m.Checkpoint,
        task_id=st.sampled_from(TASKS),
        attempt=st.integers(1, 3),
        agent_id=st.sampled_from(AGENTS),
        epoch=epochs,
        step=st.integers(0, 2**64 - 1),
        state=json_values,
        written_at=times,
    )


def summaries() -> st.SearchStrategy[m.FleetSummary]:
    agents = st.builds(
        m.FleetAgent,
        agent_id=ids_or_odd,
        epoch=epochs,
        capacity=st.integers(0, 2**64 - 1),
        in_flight=st.integers(0, 10),
        pool=st.sampled_from(m.Pool),
        draining=st.booleans(),
    )
    return st.builds(
        m.FleetSummary,
        monitor_id=st.sampled_from(("w2", "w3")),
        at=times,
        partitions=st.lists(st.integers(0, 7), max_size=4, unique=True).map(tuple),
        agents=st.lists(agents, max_size=3).map(tuple),
    )


@st.composite
def outcomes(draw: st.DrawFn) -> m.TaskOutcome:
    failed = draw(st.booleans())
    return m.TaskOutcome(
        task_id=draw(st.sampled_from(TASKS)),
        kind=m.OutcomeKind.FAILED if failed else m.OutcomeKind.COMPLETED,
        attempt=draw(st.integers(1, 3)),
        agent_id=draw(st.sampled_from(AGENTS)),
        epoch=draw(epochs),
        finished_at=draw(times),
        result=None if failed else draw(json_values),
        error=draw(odd_text.filter(bool)) if failed else None,
    )


def agent_letters() -> st.SearchStrategy[m.DeadLetter]:
    return st.builds(
        m.dead_letter,
        topic=st.sampled_from(("x.control", "x.tasks.priority", "x.checkpoints", "y.other")),
        partition=st.integers(0, 3),
        offset=st.integers(0, 100),
        key=st.none() | st.binary(max_size=8),
        value=st.none() | st.binary(max_size=8),
        reason=odd_text,
        at=times,
        refusal=st.none() | st.sampled_from(Refusal),
        source=st.sampled_from(m.Source),
        agent_id=st.none() | st.sampled_from(AGENTS),
    )


# --- hostile records -------------------------------------------------------------------------

_MARK = "\x00af-fuzz-splice\x00"


def _spliced(obj: Any, raw: str) -> bytes:
    """``obj`` as JSON, with the marker string replaced by the raw JSON text ``raw``."""
    text = orjson.dumps(obj).decode()
    return text.replace(orjson.dumps(_MARK).decode(), raw, 1).encode("utf-8", "surrogatepass")


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


#: Raw JSON that is (nearly always) no valid field value, with what it is.
BAD_SCALARS: tuple[tuple[str, str], ...] = (
    ("2^63", str(2**63)),
    ("2^64", str(2**64)),
    ("2^64+1", str(2**64 + 1)),
    ("-2^63-1", str(-(2**63) - 1)),
    ("10^40", "1" + "0" * 40),
    ("1e400", "1e400"),
    ("NaN", "NaN"),
    ("a float for an int", "1.0"),
    ("lone surrogate", '"a\\ud800b"'),
    ("lone low surrogate", '"\\udc00"'),
    ("NUL in a string", '"a\\u0000b"'),
    ("control characters", '"\\u0001\\u001f\\n\\t"'),
    ("null", "null"),
    ("true", "true"),
    ("an empty string", '""'),
    ("a string", '"x"'),
    ("a number", "7"),
    ("a negative number", "-1"),
    ("a list", "[1, 2]"),
    ("an object", '{"a": 1}'),
)


Path = tuple[str | int, ...]


def _paths(value: Any, here: Path = ()) -> list[Path]:
    """Every place in a decoded JSON value, nested ones too (list items by index)."""
    out: list[Path] = [here] if here else []
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*here, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*here, i)))
    return out


def _set(data: Any, path: Path, value: Any) -> None:
    for step in path[:-1]:
        data = data[step]
    data[path[-1]] = value


def _delete(data: Any, path: Path) -> None:
    for step in path[:-1]:
        data = data[step]
    del data[path[-1]]


def _shown(path: Path) -> str:
    return ".".join(str(p) for p in path)


@st.composite
def mutated(draw: st.DrawFn, record: m.Record) -> tuple[bytes | None, str]:
    """A value made from ``record`` (see the module docstring), and what was done."""
    data = record.to_dict()
    paths = _paths(data)
    kind = draw(
        st.sampled_from(
            (
                "tombstone",
                "empty",
                "not json",
                "truncated",
                "not an object",
                "missing field",
                "bad scalar",
                "bad scalar",
                "deep",
                "extra fields",
                "schema version",
                "huge string",
                "as is",
            )
        )
    )
    if kind == "tombstone":
        return None, kind
    if kind == "empty":
        return b"", kind
    if kind == "not json":
        return draw(st.binary(min_size=1, max_size=40)), kind
    if kind == "truncated":
        raw = record.encode()
        return raw[: draw(st.integers(1, max(1, len(raw) - 1)))], kind
    if kind == "not an object":
        return draw(st.sampled_from((b"[]", b"1", b'"x"', b"null", b"true"))), kind
    if kind == "missing field":
        path = draw(st.sampled_from(paths))
        _delete(data, path)
        return orjson.dumps(data), f"{kind} {_shown(path)}"
    if kind == "bad scalar":
        path = draw(st.sampled_from(paths))
        what, raw_text = draw(st.sampled_from(BAD_SCALARS))
        _set(data, path, _MARK)
        return _spliced(data, raw_text), f"{_shown(path)}: {what}"
    if kind == "deep":
        path = draw(st.sampled_from(paths))
        depth = draw(st.sampled_from((230, 239, 241, 254, 255, 300, 512, 1023, 1024, 1025)))
        _set(data, path, _MARK)
        return _spliced(data, _deep(depth)), f"{_shown(path)} nested {depth} deep"
    if kind == "extra fields":
        extra = draw(st.dictionaries(odd_text, json_values, min_size=1, max_size=3))
        return orjson.dumps({**extra, **data}), kind
    if kind == "schema version":
        version = draw(st.sampled_from(("0", "2", '"1"', "1.0", "true", "null", str(2**64))))
        data["schema_version"] = _MARK
        return _spliced(data, version), f"schema_version {version}"
    if kind == "huge string":
        strings = [p for p in paths if isinstance(_get(data, p), str)]
        if not strings:
            return record.encode(), "as is"
        path = draw(st.sampled_from(strings))
        size = draw(st.sampled_from((100_000, 600_000, NEAR_LIMIT - 2_000)))
        _set(data, path, "x" * size)
        return orjson.dumps(data), f"{_shown(path)} of {size} characters"
    return record.encode(), kind


def _get(data: Any, path: Path) -> Any:
    for step in path:
        data = data[step]
    return data


@st.composite
def keys(draw: st.DrawFn, natural: bytes, room: int) -> tuple[bytes | None, str]:
    """A key: the record's own (most often), none, empty, huge (within ``room`` bytes), not
    UTF-8, a lone surrogate as CESU bytes, NUL bytes."""
    kind = draw(st.sampled_from(("own", "own", "own", "none", "empty", "huge", "not utf-8", "nul")))
    if kind == "none":
        return None, "no key"
    if kind == "empty":
        return b"", "empty key"
    if kind == "huge" and room > 1000:
        size = draw(st.sampled_from((1_000, 600_000, room)))
        return b"k" * min(size, room), f"key of {min(size, room)} bytes"
    if kind == "not utf-8":
        return draw(st.sampled_from((b"\xff\xfe", b"\xed\xa0\x80", natural + b"\xc3"))), kind
    if kind == "nul":
        return natural + b"\x00", "key with NUL"
    return natural, "own key"


def hostile(
    valid: st.SearchStrategy[m.Record],
    key_of: Callable[[Any], str],
    partition_of: Callable[[bytes], int],
    partitions: int,
) -> st.SearchStrategy[Raw]:
    """Records made from ``valid`` ones: mutated values, odd keys, now and then the wrong
    partition (``partition_of(natural key)`` is the right one)."""

    @st.composite
    def build(draw: st.DrawFn) -> Raw:
        record = draw(valid)
        natural = key_of(record).encode("utf-8", "surrogatepass")
        value, what = draw(mutated(record))
        room = NEAR_LIMIT - (len(value) if value is not None else 0)
        key, key_what = draw(keys(natural, room))
        partition = partition_of(natural)
        if partitions > 1 and draw(st.integers(0, 9)) == 0:
            partition = (partition + draw(st.integers(1, partitions - 1))) % partitions
            key_what += ", wrong partition"
        return Raw(key, value, partition, f"{what}; {key_what}")

    return build()


def agent_partition(topics: Topics) -> Callable[[bytes], int]:
    return lambda key: partition_for(key, topics.agent_partitions)


def valid_raw(
    valid: st.SearchStrategy[m.Record], key_of: Callable[[Any], str], topics: Topics
) -> st.SearchStrategy[Raw]:
    """Valid records, keyed and partitioned as their writer would."""
    return valid.map(
        lambda r: Raw(
            key_of(r).encode(),
            r.encode(),
            partition_for(key_of(r), topics.agent_partitions),
            "valid",
        )
    )


def agent_id_of(record: Any) -> str:
    """The agent a record of an agent-keyed topic belongs to."""
    if isinstance(record, m.Redispatch):
        return record.target_agent_id
    return str(record.agent_id)


def stream(*choices: st.SearchStrategy[Any], max_size: int = 12) -> st.SearchStrategy[list[Any]]:
    """A list of records drawn from any of ``choices``."""
    return st.lists(st.one_of(*choices), min_size=1, max_size=max_size)


def refused(
    cls: type[m.Record],
    raw: Raw,
    partitions: int | None,
    also: Callable[[Any, Raw], bool] = lambda _record, _raw: False,
) -> bool:
    """Whether every reader refuses ``raw``: the model's decoder does, or (``partitions``: an
    agent-keyed topic) it lies in a partition its agent does not hash to, or ``also`` says the
    record is no use where it lies."""
    try:
        record = cls.decode(raw.value)
    except CodecError:
        return True
    wrong = partitions is not None and (
        partition_for(agent_id_of(record), partitions) != raw.partition
    )
    return wrong or also(record, raw)
