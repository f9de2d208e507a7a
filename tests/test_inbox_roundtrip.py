"""Every stored delivery exports and replays back, Events-API ones included.

`inbox export` then `replay-webhook --unsigned` once rejected every delivery
that came from the Events API (`no_signature`), and the export's warning said
listener deliveries had come from the API.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.services.replay import ReplayOptions, replay
from stripectl.store import open_store
from stripectl.webhooks.delivery import Delivery
from tests import factories as f
from tests.replay_helpers import SECRET, mirror_state

runner = CliRunner()
SUB, CUS = "sub_rt_1", "cus_rt_1"


def _mirror(db: Path) -> None:
    """A subscription's history pulled from the Events API, one signed
    webhook, and one delivery that arrived without a signature."""
    history = f.lifecycle(SUB, CUS)
    api = [
        Delivery(source="api", body=json.dumps(e).encode(), received_at=e["created"] + 5, trusted=True)
        for e in history
    ]
    signed_evt = f.event("customer.created", f.customer("cus_rt_signed"), id="evt_rt_signed", created=f.T0)
    env = f.envelope(signed_evt, SECRET, t=f.T0, received_at=f.T0 + 1)
    signed = Delivery(
        source="listener", body=env["body"].encode(), headers=env["headers"], received_at=f.T0 + 1
    )
    bare_evt = f.event("customer.created", f.customer("cus_rt_bare"), id="evt_rt_bare", created=f.T0)
    bare = Delivery(source="listener", body=json.dumps(bare_evt).encode(), received_at=f.T0 + 2)
    store = open_store(str(db))
    try:
        replay(store, [*api, signed, bare], ReplayOptions(secrets=[SECRET]), now=f.T0 + 10)
    finally:
        store.close()


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_every_stored_delivery_replays_back(tmp_path: Path) -> None:
    db, again, out = tmp_path / "m.db", tmp_path / "again.db", tmp_path / "all.jsonl"
    _mirror(db)
    n_api = len(f.lifecycle(SUB, CUS))
    code, stdout, err = _cli("inbox", "export", "--db", str(db), "-o", str(out), "--json")
    assert code == 0
    assert json.loads(stdout) == {
        "exported": n_api + 2, "unsigned": n_api + 1, "from_api": n_api, "output": str(out),
    }
    # The warning says the truth: which came from the API, which arrived unsigned.
    assert f"{n_api} pulled from the Events API" in err
    assert "1 received without a signature" in err and "--unsigned" in err

    code, stdout, _ = _cli(
        "replay-webhook", str(out), "--secret", SECRET, "--unsigned", "--db", str(again), "--json"
    )
    report = json.loads(stdout)
    assert report["summary"]["rejected"] == 0, report["events"]
    by_id = {e["event_id"]: e for e in report["events"]}
    assert by_id["evt_rt_signed"]["verified"] is True
    assert by_id["evt_rt_bare"]["verified"] is False
    api_ids = {e["id"] for e in f.lifecycle(SUB, CUS)}
    assert all(by_id[i]["verified"] is False for i in api_ids)
    # The subscription comes out as the Events API left it.
    assert mirror_state(again)["subscriptions"] == mirror_state(db)["subscriptions"]
    assert all(not s["verified"] for s in report["subscriptions"] if s["id"] == SUB)


def test_without_unsigned_they_stay_rejected(tmp_path: Path) -> None:
    db, out = tmp_path / "m.db", tmp_path / "all.jsonl"
    _mirror(db)
    assert _cli("inbox", "export", "--db", str(db), "-o", str(out))[0] == 0
    code, stdout, _ = _cli(
        "replay-webhook", str(out), "--secret", SECRET, "--db", str(tmp_path / "b.db"), "--json"
    )
    report = json.loads(stdout)
    assert code == 1
    assert report["summary"]["rejected"] == len(f.lifecycle(SUB, CUS)) + 1
    assert {e["reason"] for e in report["events"] if e["outcome"] == "rejected"} == {"no_signature"}


def test_a_signature_that_is_there_is_checked_even_with_unsigned(tmp_path: Path) -> None:
    evt = f.event("customer.created", f.customer("cus_rt_x"), id="evt_rt_x", created=f.T0)
    env = f.envelope(evt, "whsec_stripectl_attacker_0000", t=f.T0, received_at=f.T0 + 1)
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(env) + "\n")
    code, stdout, _ = _cli(
        "replay-webhook", str(p), "--secret", SECRET, "--unsigned", "--db", str(tmp_path / "m.db"), "--json"
    )
    assert code == 1 and json.loads(stdout)["events"][0]["reason"] == "bad_signature"
