"""Worker-process verification gives exactly what inline verification gives."""

from __future__ import annotations

import json
from pathlib import Path

from stripectl.services.parallel import PARALLEL_MIN_BYTES
from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, mirror_state, run_json, write_jsonl


def test_parallel_and_inline_agree(tmp_path: Path) -> None:
    events: list[dict[str, object]] = []
    for i in range(90):
        events += f.lifecycle(f"sub_1Par{i:018d}", f"cus_1Par{i:012d}", shape="old" if i % 3 else "new")
    envs = envelopes(events)
    envs.insert(5, {**envs[5], "body": envs[5]["body"] + " "})  # tampered: one byte more
    corpus = write_jsonl(tmp_path / "c.jsonl", envs + envs[:50])
    with corpus.open("a") as fh:
        fh.write("{not json\n")
    assert corpus.stat().st_size > PARALLEL_MIN_BYTES  # the worker path is really taken

    reports = {}
    for jobs in ("1", "2"):
        code, report = run_json(
            "replay-webhook",
            str(corpus),
            "--secret",
            SECRET,
            "--db",
            str(tmp_path / f"{jobs}.db"),
            "--jobs",
            jobs,
        )
        assert code == 1  # the tampered delivery and the broken line
        reports[jobs] = report
    assert reports["1"]["summary"] == reports["2"]["summary"]
    # The tampered delivery is repeated among the 50: rejected again, not a duplicate.
    assert reports["1"]["summary"]["rejected"] == 3 and reports["1"]["summary"]["duplicate"] == 49
    assert json.dumps(reports["1"]["events"]) == json.dumps(reports["2"]["events"])  # same order too
    assert mirror_state(tmp_path / "1.db") == mirror_state(tmp_path / "2.db")
