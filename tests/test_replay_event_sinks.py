"""Results handed out chunk by chunk (the CLI's spool and table sinks) lose nothing."""

from __future__ import annotations

from pathlib import Path

from stripectl.cli.replay_render import TableEvents
from stripectl.services.replay import ReplayOptions, replay
from stripectl.services.replay_report import EventResult
from stripectl.store import open_store
from stripectl.webhooks.delivery import Delivery
from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, run, run_json, write_jsonl


def _corpus(n_subs: int) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for i in range(n_subs):
        events += f.lifecycle(f"sub_1Sink{i:019d}", f"cus_1Sink{i:015d}", payment_succeeded=False)
    envs = envelopes(events)
    envs[4] = {**envs[4], "body": envs[4]["body"] + " "}  # tampered
    return envs + envs[:3]


def test_spooled_json_report_equals_the_in_memory_report(tmp_path: Path) -> None:
    envs = _corpus(3)
    corpus = write_jsonl(tmp_path / "c.jsonl", envs)
    code, cli = run_json(
        "replay-webhook", str(corpus), "--secret", SECRET, "--db", str(tmp_path / "cli.db")
    )
    store = open_store(str(tmp_path / "svc.db"))
    try:
        deliveries = [
            Delivery(source=f"{corpus}:{n}", body=str(e["body"]).encode(),
                     headers=dict(e["headers"]), received_at=int(e["received_at"]))
            for n, e in enumerate(envs, 1)
        ]
        svc = replay(store, deliveries, ReplayOptions(secrets=[SECRET])).to_json()
    finally:
        store.close()
    assert code == 1
    assert cli["summary"] == svc["summary"] and cli["summary"]["total"] == len(envs)
    assert cli["events"] == svc["events"]
    assert [s["id"] for s in cli["subscriptions"]] == [s["id"] for s in svc["subscriptions"]]


def _result(n: int, outcome: str) -> EventResult:
    return EventResult(f"s:{n}", f"evt_{n}", "invoice.paid", outcome, None, f"{n:064d}")


def test_table_sink_keeps_all_of_a_small_run_and_only_problems_of_a_big_one() -> None:
    small, big, problems = TableEvents("auto"), TableEvents("auto"), TableEvents("problems")
    outcomes = ["applied"] * 60 + ["rejected"] + ["stale"] + ["applied"] * 60 + ["anomaly"]
    results = [_result(n, o) for n, o in enumerate(outcomes)]
    small(results[:50])
    small(results[50:90])
    for start in range(0, len(results), 7):
        big(results[start : start + 7])
        problems(results[start : start + 7])
    assert [e.outcome for e in small.kept] == outcomes[:90] and small.total == 90
    assert [e.outcome for e in big.kept] == ["rejected", "stale", "anomaly"]
    assert big.total == len(outcomes)
    assert [e.source for e in problems.kept] == [e.source for e in big.kept]
    nothing = TableEvents("none")
    nothing(results)
    assert nothing.kept == [] and nothing.total == len(results)


def test_table_lists_problems_of_a_big_run_and_counts_the_rest(tmp_path: Path) -> None:
    envs = _corpus(12)  # > 100 deliveries
    corpus = write_jsonl(tmp_path / "c.jsonl", envs)
    result = run(
        "replay-webhook", str(corpus), "--secret", SECRET, "--db", str(tmp_path / "m.db")
    )
    assert result.exit_code == 1
    assert "bad_signature" in result.stdout
    assert f"{len(envs) - 1} more deliveries not listed" in result.stderr + result.stdout
