"""examples/github-actions/drift-check.yml runs as it is, against a fake Stripe.

The workflow's steps run in order, as a runner would (tests/workflow_runner.py):
a first night with no cache (full sync, no drift), a second night that
restores the cache, brings it forward from the Events API and finds a drift,
which fails the job with exit 1; both write the JUnit and Markdown reports,
and what is cached holds no raw event body and no customer contact details.
The workflow must also pass actionlint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import factories as f
from tests.fakes.base import FakeStripe, Request, Response, serve
from tests.fakes.events import FakeEvents
from tests.fakes.subscriptions import FakeSubscriptions
from tests.workflow_runner import REPO, Caches, Runner, evaluate

WORKFLOW = REPO / "examples" / "github-actions" / "drift-check.yml"
KEY = "rk_test_51StripectlDriftCheckFake000000"
EMAIL = "grace.hopper.ci@example.com"


class Stripe(FakeStripe):
    """Subscriptions and events behind one base URL."""

    def __init__(self) -> None:
        super().__init__()
        self.subs = FakeSubscriptions([self.sub(n) for n in range(1, 4)])
        self.events = FakeEvents()

    @staticmethod
    def sub(n: int, **kw: Any) -> dict[str, Any]:
        kw.setdefault("metadata", {"user_id": f"user_ci{n}", "plan_name": "team"})
        return f.subscription(id=f"sub_ci{n:03d}", customer=f"cus_ci{n:03d}", created=f.T0 + n, **kw)

    def route(self, req: Request) -> Response:
        return (self.events if req.path.startswith("/v1/events") else self.subs).route(req)


@pytest.fixture
def stripe() -> Iterator[tuple[Stripe, str]]:
    app = Stripe()
    with serve(app) as url:
        yield app, url


def _runner_env(tmp_path: Path, url: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        # The test's stand-in for api.stripe.com (the workflow itself names no URL).
        "STRIPECTL_API_BASE": url,
    }
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    return env


def _night(tmp_path: Path, name: str, caches: Caches, url: str, run_id: int) -> Any:
    runner = Runner(
        WORKFLOW,
        tmp_path / name,
        caches,
        env=_runner_env(tmp_path, url),
        secrets={"STRIPE_DRIFT_KEY": KEY},
        run_id=run_id,
    )
    return runner, runner.run_job("drift")


def _explain(job: Any) -> str:
    return "\n".join(f"--- {s.name} [{s.outcome}]\n{s.stdout}\n{s.stderr}" for s in job.steps)


def test_the_workflow_runs_two_nights_and_fails_on_drift(
    tmp_path: Path, stripe: tuple[Stripe, str]
) -> None:
    app, url = stripe
    caches = Caches(tmp_path / "caches")
    caches.root.mkdir()

    # Night 1: no cache yet -> full sync, no drift, job green.
    runner, job = _night(tmp_path, "night1", caches, url, run_id=1001)
    assert job.status == "success", _explain(job)
    assert job.step("Restore the mirror").outputs["cache-matched-key"] == ""
    assert "synced 3 subscriptions" in job.step("Bring the mirror forward").stdout
    assert job.step("Reconcile").outputs == {"exit_code": "0"}
    assert job.step("Fail on drift or error").outcome == "skipped"
    suite = ET.parse(runner.workspace / "drift.xml").getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("3", "0")
    assert "No drift" in (runner.workspace / "drift.md").read_text()
    assert "No drift" in job.summary and "Reconcile runs" in job.summary
    assert caches.saved == ["stripectl-mirror-1001-1"]
    assert {p.name for p in (runner.artifacts / "stripe-drift-1001-1").iterdir()} == {
        "drift.xml", "drift.md", "drift.json",
    }

    # Between the nights: a webhook-visible change and a silent one.
    time.sleep(1.1)  # the events are newer than night 1's listing
    now = int(time.time())
    app.events.add(f.event("customer.created", f.customer("cus_ci001", email=EMAIL, name="Grace CI"),
                           id="evt_ci_cus", created=now))
    changed = Stripe.sub(1, status="past_due")
    app.subs.put(changed)
    app.events.add(f.event("customer.subscription.updated", changed, id="evt_ci_upd", created=now,
                           previous_attributes={"status": "active"}))
    app.subs.update("sub_ci002", status="canceled")  # a Dashboard change with no event handled

    # Night 2: restores night 1's cache by prefix, goes incremental, finds the drift.
    runner, job = _night(tmp_path, "night2", caches, url, run_id=1002)
    assert job.step("Restore the mirror").outputs["cache-matched-key"] == "stripectl-mirror-1001-1"
    forward = job.step("Bring the mirror forward")
    assert forward.outcome == "success" and "events since" in forward.stdout, _explain(job)
    assert job.step("Reconcile").outputs == {"exit_code": "1"}
    fail = job.step("Fail on drift or error")
    assert (fail.outcome, fail.returncode) == ("failure", 1)
    assert "::error::Stripe drift found" in fail.stdout
    assert job.status == "failure"
    cases = {
        c.get("name"): c
        for c in ET.parse(runner.workspace / "drift.xml").getroot().iter("testcase")
    }
    assert cases["sub_ci002"].find("failure") is not None
    assert cases["sub_ci001"].find("failure") is None  # the event brought it forward
    md = (runner.workspace / "drift.md").read_text()
    assert "sub\\_ci002 | status | active | canceled" in md  # Markdown-escaped
    assert md in job.summary
    # Saved although the job failed, under a key of its own; no collision.
    assert caches.saved == ["stripectl-mirror-1001-1", "stripectl-mirror-1002-1"]
    assert job.collisions == []

    # What the cache holds: no raw body, no contact details.
    cached = caches.folder("stripectl-mirror-1002-1")
    blobs = b"".join(p.read_bytes() for p in cached.rglob("*") if p.is_file())
    assert b"sub_ci002" in blobs  # the mirror is there...
    assert EMAIL.encode() not in blobs and b"Grace CI" not in blobs  # ...customer data is not
    assert b'"object": "event"' not in blobs and b"evt_ci_upd" in blobs  # ids kept, bodies gone


def test_a_re_run_attempt_saves_under_a_key_of_its_own(tmp_path: Path) -> None:
    import yaml

    wf = yaml.safe_load(WORKFLOW.read_text())
    steps = wf["jobs"]["drift"]["steps"]
    save = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache/save"))
    restore = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache/restore"))
    keys = set()
    for attempt in (1, 2, 3):
        ctx = {"github": {"run_id": "77", "run_attempt": str(attempt)}, "__functions__": {}}
        key = save["with"]["key"].replace("${{", "\0").replace("}}", "\0").split("\0")
        rendered = "".join(
            str(evaluate(part, ctx)) if i % 2 else part for i, part in enumerate(key)
        )
        keys.add(rendered)
        assert any(rendered.startswith(p.strip()) for p in restore["with"]["restore-keys"].splitlines() if p)
    assert len(keys) == 3
    assert save["with"]["key"] == restore["with"]["key"]


def test_the_workflow_installs_from_the_checkout_not_pypi() -> None:
    text = WORKFLOW.read_text()
    assert "actions/checkout@" in text
    assert "stripectl==" not in text and "pip install ." in text


def _actionlint() -> str:
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.exists() else shutil.which("actionlint")
    assert found, "actionlint is in the test extra: pip install -e '.[test]'"
    return found


def test_the_workflow_passes_actionlint() -> None:
    proc = subprocess.run(
        [_actionlint(), "-no-color", str(WORKFLOW)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_does_catch_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(WORKFLOW.read_text().replace("steps.reconcile.outputs.exit_code != '0'",
                                                "steps.reconcile.output.exit_code !== '0'"))
    proc = subprocess.run([_actionlint(), "-no-color", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "bad.yml" in proc.stdout
