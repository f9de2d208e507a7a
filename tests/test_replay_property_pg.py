"""The order-independence property on PostgreSQL: any permutation of a valid
delivery set, with duplicates and re-signed re-deliveries, in any chunk
size, gives the mirror the SQLite reference replay gives."""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stripectl.services.replay import ReplayOptions, replay
from stripectl.store import open_store
from tests import factories as f
from tests.replay_helpers import SECRET, store_state
from tests.test_replay_property import ENVELOPES, REFERENCE, _delivery, _redelivery

_schemas = itertools.count()


def _pg_final_state(url: str, envs: list[dict[str, Any]], chunk_size: int) -> str:
    store = open_store(url, schema=f"prop_{next(_schemas)}")
    try:
        report = replay(
            store,
            [_delivery(i, e) for i, e in enumerate(envs)],
            ReplayOptions(secrets=[SECRET]),
            now=f.T0,
            chunk_size=chunk_size,
        )
        assert report.summary["rejected"] == 0 and report.summary["anomaly"] == 0
        state = {t: [list(r) for r in rows] for t, rows in store_state(store).items()}
    finally:
        store.close()
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def test_the_reference_replay_gives_the_sqlite_mirror(pg_cluster: Any) -> None:
    assert _pg_final_state(pg_cluster.create_db("prop"), ENVELOPES, 10_000) == REFERENCE


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    order=st.permutations(range(len(ENVELOPES))),
    dupes=st.lists(st.tuples(st.integers(0, len(ENVELOPES) - 1), st.booleans()), max_size=8),
    chunk_size=st.sampled_from([1, 3, 7, 10_000]),
)
def test_any_order_with_duplicates_gives_the_same_mirror_on_postgres(
    pg_cluster: Any, order: list[int], dupes: list[tuple[int, bool]], chunk_size: int
) -> None:
    envs = [ENVELOPES[i] for i in order]
    for i, resign in dupes:
        envs.insert(
            (i * 7) % (len(envs) + 1), _redelivery(ENVELOPES[i], 60) if resign else ENVELOPES[i]
        )
    url = getattr(pg_cluster, "_property_db", None)
    if url is None:
        url = pg_cluster._property_db = pg_cluster.create_db("prop")
    assert _pg_final_state(url, envs, chunk_size) == REFERENCE
