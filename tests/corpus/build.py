"""Regenerate tests/corpus/ from snapshots of public repositories nobody here wrote.

    python tests/corpus/build.py \
        --openapi /work/.mirror/stripe+openapi/repo \
        --node /work/.mirror/stripe+stripe-node/repo \
        --djstripe /work/.mirror/dj-stripe+dj-stripe/repo

Each argument is a git directory (a clone or a bare mirror); the commits read
are pinned below, so the output is the same every time. stripe-python's
event-type list is read from the installed SDK (stripe/_event.py). See
SOURCES.md for what each output file holds.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import types
from io import BytesIO
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent

# openapi/fixtures3.json of stripe/openapi: the last commit touching it in
# each year, 2017 to 2026 (the shapes change: invoice paid/closed/forgiven
# before 2018-11-08, subscription plan before items, basil's
# parent.subscription_details, ...).
OPENAPI_COMMITS = [
    "3a0e9eda1a8026ddf1d2ab2f5995aece076156f8",
    "c45f4ed0b7a439cb22ff00c46ea3e72c4df3983f",
    "a2f0a361c3d1bd367c61eaff2a9b759e06f65927",
    "d0ecb72d5181898375a78e57baf565685c9ac616",
    "0fd9b354cda58565392b794091b325ded0d312c4",
    "19f3c4471a19203eefa9b8e04d83b471a7ed2c00",
    "625551b5034d8b33286297cc29f01a328381f35e",
    "ffec61d1d5aa437b81ac4679c13ac2295616092e",
    "3349f387e1545515e47ddc0df9ae5f45d438d8dd",
    "f0758b15a2cf53779d699452f4ab07d11076af0f",
]
NODE_COMMIT = "663942164d3876f04bb26617b88f498ba785e580"
NODE_EVENTS = "src/resources/Events.ts"
NODE_API_VERSION_FILES = ("src/apiVersion.ts", "src/apiVersion.js", "lib/apiVersion.js")
DJSTRIPE_COMMIT = "f04d5d7e9af894dba93aa727d68619966764c6ac"


def git(gitdir: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(gitdir), *args], check=True, capture_output=True).stdout


def node_event_map(node: Path) -> dict[str, str]:
    """event type -> the TypeScript name of the object it carries (stripe-node)."""
    text = git(node, "show", f"{NODE_COMMIT}:{NODE_EVENTS}").decode()
    pairs = re.findall(r"type: '([^']+)';\s*data: [^{]*\{[^}]*?object: ([A-Za-z.]+);", text, re.S)
    return dict(pairs)


def python_event_types() -> tuple[str, list[str]]:
    import stripe

    path = Path(stripe.__file__).parent / "_event.py"
    text = path.read_text()
    start = text.index("type: Literal[")
    return stripe.VERSION, re.findall(r'"([^"]+)"', text[start : text.index("]", start)])


def resource_name(ts_name: str) -> str:
    """stripe-node's `Billing.AlertTriggered` -> fixtures3's `billing.alert_triggered`."""
    special = {
        "Sigma.ScheduledQueryRun": "scheduled_query_run",
        "InvoiceItem": "invoiceitem",
        # customer.source.*: a card, bank account or source; fixtures3 has each.
        "CustomerSource": "card",
    }
    if ts_name in special:
        return special[ts_name]
    return ".".join(re.sub(r"(?<!^)([A-Z])", r"_\1", part).lower() for part in ts_name.split("."))


def api_version_at(openapi: Path, node: Path, commit: str) -> tuple[str, str]:
    """(the API version fixtures3 was rendered with, where it was read)."""
    try:
        spec = git(openapi, "show", f"{commit}:openapi/spec3.json")
        return json.loads(spec)["info"][
            "version"
        ], f"stripe/openapi@{commit[:10]}:openapi/spec3.json info.version"
    except subprocess.CalledProcessError:
        pass  # the spec's blob is not in the snapshot (too large): ask stripe-node
    date = git(openapi, "log", "-1", "--format=%cI", commit).decode().strip()
    ncommit = git(node, "log", "-1", f"--until={date}", "--format=%H", "--", *NODE_API_VERSION_FILES)
    ncommit_s = ncommit.decode().strip()
    for path in NODE_API_VERSION_FILES:
        try:
            text = git(node, "show", f"{ncommit_s}:{path}").decode()
        except subprocess.CalledProcessError:
            continue
        match = re.search(r"'(\d{4}-\d\d-\d\d[^']*)'", text)
        if match:
            return match.group(1), f"stripe/stripe-node@{ncommit_s[:10]}:{path} (pinned then)"
    raise SystemExit(f"no API version found for {commit}")


def openapi_snapshots(openapi: Path, node: Path, wanted: set[str]) -> list[dict[str, Any]]:
    out = []
    for commit in OPENAPI_COMMITS:
        resources = json.loads(git(openapi, "show", f"{commit}:openapi/fixtures3.json"))["resources"]
        date = git(openapi, "log", "-1", "--format=%cs", commit).decode().strip()
        version, version_from = api_version_at(openapi, node, commit)
        out.append(
            {
                "commit": commit,
                "date": date,
                "api_version": version,
                "api_version_from": version_from,
                "resource_count": len(resources),
                "resources": {k: v for k, v in sorted(resources.items()) if k in wanted},
            }
        )
    return out


def djstripe_events(djstripe: Path) -> list[dict[str, Any]]:
    """Every event dj-stripe's tests hold: tests/fixtures/event_*.json, and the
    FAKE_EVENT_* dicts of tests/__init__.py (built there from the other
    fixtures). That module imports Django and djstripe only for a timezone
    and a date format: small stand-ins are enough to evaluate it."""
    archive = git(djstripe, "archive", "--format=tar", DJSTRIPE_COMMIT, "tests/__init__.py", "tests/fixtures")
    found: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        root = Path(tmp) / "tests"
        for path in sorted((root / "fixtures").glob("event_*.json")):
            found.append({"name": f"tests/fixtures/{path.name}", "event": json.loads(path.read_text())})
        (root / "asserts.py").write_text("AssertStripeFksMixin = object\nCOMMON_BLANK_FKS = set()\n")
        (root / "stripe_world.py").write_text("mock_stripe_world = monkeypatch_stripe_world = None\n")
        import datetime

        stubs = {
            "django": types.ModuleType("django"),
            "django.utils": types.ModuleType("django.utils"),
            "django.utils.dateformat": types.ModuleType("django.utils.dateformat"),
            "djstripe": types.ModuleType("djstripe"),
            "djstripe.utils": types.ModuleType("djstripe.utils"),
        }
        stubs["django.utils.dateformat"].format = lambda d, _fmt: str(int(d.timestamp()))  # type: ignore[attr-defined]
        stubs["django.utils"].dateformat = stubs["django.utils.dateformat"]  # type: ignore[attr-defined]
        stubs["djstripe.utils"].get_timezone_utc = lambda: datetime.UTC  # type: ignore[attr-defined]
        saved = {k: sys.modules.get(k) for k in stubs}
        sys.modules.update(stubs)
        try:
            spec = importlib.util.spec_from_file_location(
                "djstripe_tests", root / "__init__.py", submodule_search_locations=[str(root)]
            )
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules["djstripe_tests"] = module
            spec.loader.exec_module(module)
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
            sys.modules.pop("djstripe_tests", None)
        for name in sorted(vars(module)):
            value = getattr(module, name)
            if name.startswith("FAKE_EVENT") and isinstance(value, dict) and value.get("object") == "event":
                found.append(
                    {"name": f"tests/__init__.py:{name}", "event": json.loads(json.dumps(value, default=str))}
                )
    # The JSON files and the module hold some of the same events: keep one.
    unique: dict[str, dict[str, Any]] = {}
    for item in found:
        unique.setdefault(json.dumps(item["event"], sort_keys=True), item)
    return list(unique.values())


def write_gz(path: Path, value: Any) -> None:
    data = json.dumps(value, sort_keys=True, indent=0).encode()
    # mtime=0: the same input gives the same bytes.
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as f:
        f.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--openapi", type=Path, required=True)
    parser.add_argument("--node", type=Path, required=True)
    parser.add_argument("--djstripe", type=Path, required=True)
    args = parser.parse_args()

    node_map = node_event_map(args.node)
    py_version, py_types = python_event_types()
    (HERE / "event_types.json").write_text(
        json.dumps(
            {
                "stripe-node": {
                    "repo": "stripe/stripe-node",
                    "commit": NODE_COMMIT,
                    "path": NODE_EVENTS,
                    "types": node_map,
                },
                "stripe-python": {
                    "package": f"stripe=={py_version}",
                    "path": "stripe/_event.py",
                    "types": py_types,
                },
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
    wanted = {resource_name(t) for t in node_map.values()} | {
        "card",
        "bank_account",
        "source",
        "external_account",
        "discount",
        "deleted_discount",
    }
    write_gz(HERE / "openapi_fixtures.json.gz", openapi_snapshots(args.openapi, args.node, wanted))
    write_gz(
        HERE / "djstripe_events.json.gz",
        {"commit": DJSTRIPE_COMMIT, "events": djstripe_events(args.djstripe)},
    )


if __name__ == "__main__":
    main()
