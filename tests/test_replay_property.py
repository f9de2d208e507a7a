"""Property: any permutation of a valid delivery set, with duplicates, gives one mirror."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stripectl.services.replay import ReplayOptions, replay
from stripectl.store import open_store
from stripectl.webhooks.delivery import Delivery
from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, mirror_state

HISTORY = f.lifecycle("sub_1PropertyA00000000001", "cus_1PropertyA0001", shape="new") + f.lifecycle(
    "sub_1PropertyB00000000001",
    "cus_1PropertyB0001",
    shape="old",
    user_id="user_b",
    failed_renewal=True,
    cancel=False,
)
ENVELOPES = envelopes(HISTORY)


def _delivery(n: int, env: dict[str, Any]) -> Delivery:
    return Delivery(
        source=f"p:{n}",
        body=env["body"].encode(),
        headers=env["headers"],
        received_at=env["received_at"],
    )


def _redelivery(env: dict[str, Any], shift: int) -> dict[str, Any]:
    """Stripe re-sends the same event later: new signature timestamp, same body."""
    t = json.loads(env["body"])["created"] + shift
    return f.envelope(env["body"], SECRET, t=t, received_at=t + 1)


def _final_state(envs: list[dict[str, Any]], chunk_size: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "m.db"
        store = open_store(str(db))
        try:
            report = replay(
                store,
                [_delivery(i, e) for i, e in enumerate(envs)],
                ReplayOptions(secrets=[SECRET]),
                now=f.T0,
                chunk_size=chunk_size,
            )
        finally:
            store.close()
        assert report.summary["rejected"] == 0 and report.summary["anomaly"] == 0
        return hashlib.sha256(json.dumps(mirror_state(db), sort_keys=True).encode()).hexdigest()


REFERENCE = _final_state(ENVELOPES, chunk_size=10_000)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    order=st.permutations(range(len(ENVELOPES))),
    dupes=st.lists(st.tuples(st.integers(0, len(ENVELOPES) - 1), st.booleans()), max_size=8),
    chunk_size=st.sampled_from([1, 3, 7, 10_000]),
)
def test_any_order_with_duplicates_gives_the_same_mirror(
    order: list[int], dupes: list[tuple[int, bool]], chunk_size: int
) -> None:
    envs = [ENVELOPES[i] for i in order]
    for i, resign in dupes:
        envs.insert(
            (i * 7) % (len(envs) + 1), _redelivery(ENVELOPES[i], 60) if resign else ENVELOPES[i]
        )
    assert _final_state(envs, chunk_size) == REFERENCE
