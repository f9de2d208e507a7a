"""Benchmark: `stripectl replay-webhook` end to end vs a stripe.Webhook.construct_event loop.

    python bench/replay.py                    # 50,000 deliveries, speed targets
    python bench/replay.py --n 5000           # quick run
    python bench/replay.py --memory-n 100000  # also the 100,000-delivery peak-memory check

Targets: replay >= 12x the construct_event loop (deliveries/s); peak RSS of the replay
process < 200 MB for 100,000 deliveries, in every output mode: the memory check
replays them twice, with --json and with the default table (stdout to a file).
The replay is timed as a subprocess (interpreter start, reading, verifying, SQLite
writes, the report: everything a user waits for); construct_event is timed in-process
on a sample and extrapolated as a rate. Both are measured --repeat times, alternately
(this machine's speed drifts by 10-15% over minutes), and the best of each is
compared; every figure is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _gen  # noqa: E402
from stripectl.gateway import signatures  # noqa: E402
from stripectl.webhooks import json_parse  # noqa: E402

SPEED_TARGET = 12.0
PG_TARGET = 0.5  # PostgreSQL replay rate / SQLite replay rate, same deliveries, same run
MEMORY_TARGET_MB = 200.0
MEMORY_TARGET_N = 100_000


def _stripectl() -> list[str]:
    exe = shutil.which("stripectl", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "stripectl"]


def _secs(run: dict[str, Any]) -> str:
    return f"{run['seconds']:.2f}s"


def _drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run_replay(
    path: Path, db: Path | str, out: Path, secret: str, mode: str = "json",
    schema: str | None = None,
) -> dict[str, Any]:
    """Time one replay subprocess; peak RSS from wait4's rusage of that very child.
    `mode` json: --json; table: the default human table. `schema`: of a PostgreSQL mirror."""
    cmd = [*_stripectl(), *(["--schema", schema] if schema else []), "replay-webhook", str(path),
           "--secret", secret, "--db", str(db)]
    if mode == "json":
        cmd.append("--json")
    env = {k: v for k, v in os.environ.items() if k not in ("STRIPE_WEBHOOK_SECRET",
                                                            "STRIPECTL_DB")}
    with out.open("wb") as stdout, (out.parent / "replay.stderr").open("wb") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    summary: dict[str, Any] = {}
    if mode == "json":
        try:
            report = json.loads(out.read_bytes())
            summary = report.get("summary", {}) if isinstance(report, dict) else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    else:  # the table's last line: "100000 deliveries: applied ..., ..."
        lines = out.read_text(errors="replace").strip().splitlines()
        summary = {"last line": lines[-1][:120] if lines else "", "lines": len(lines)}
    return {"seconds": elapsed, "rc": proc.returncode, "maxrss_mb": usage.ru_maxrss / 1024,
            "summary": summary,
            "stderr": (out.parent / "replay.stderr").read_text(errors="replace")[-2000:]}


def time_construct_event(sample: list[tuple[str, str]], secret: str) -> float:
    """Deliveries/s of the SDK's construct_event (verify + StripeObject build)."""
    signatures.construct_event_loop(sample[:50], secret)  # warm-up (imports, caches)
    started = time.perf_counter()
    done = signatures.construct_event_loop(sample, secret)
    return done / (time.perf_counter() - started)


def time_verify_only(sample: list[tuple[str, str]], secret: str) -> float:
    """For context: verify_header + stripectl's JSON parse of the body (orjson),
    one core, no store: the floor any replay builds on."""
    started = time.perf_counter()
    for body, header in sample:
        signatures.verify(body, header, [secret])
        json_parse.loads(body)
    return len(sample) / (time.perf_counter() - started)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def byte_compile() -> None:
    """Untimed: give stripectl the .pyc files any installed package has. An
    editable install compiles nothing, and where PYTHONDONTWRITEBYTECODE is
    set (this workplace sets it) every replay would compile ~60 modules
    first (~40 ms, none of it replay work)."""
    import compileall

    compileall.compile_dir(ROOT / "stripectl", quiet=1)


def generate(n: int, sample_n: int, workdir: Path, label: str) -> tuple[Path, Any]:
    path = workdir / f"deliveries-{n}.jsonl"
    t = time.perf_counter()
    gen = _gen.write_deliveries(path, n, sample=sample_n)
    # Untimed: the file's writeback would otherwise run during the timed replay
    # and slow its SQLite fsyncs; a user's saved deliveries are on disk already.
    with path.open("rb") as fh:
        os.fsync(fh.fileno())
    gen_s = time.perf_counter() - t
    size_mb = path.stat().st_size / 1e6
    print(f"[{label}] generated {n:,} deliveries in {gen_s:.1f}s: {size_mb:.0f} MB JSONL, "
          f"mean body {gen.bytes_body / n:,.0f} B, mix {gen.kinds}", flush=True)
    return path, gen


def replay_once(
    path: Path, workdir: Path, n: int, keep: bool, mode: str = "json", pg_url: str | None = None
) -> dict[str, Any]:
    """One replay into a fresh mirror, removed afterwards (unless kept): a
    previous run's database would otherwise be written back during this one.
    With `pg_url`, the mirror is a new schema of that PostgreSQL database."""
    if pg_url is not None:
        schema = f"bench_{os.getpid()}_{time.monotonic_ns() % 10**9}"
        result = run_replay(path, pg_url, workdir / f"report-pg-{n}.{mode}", _gen.SECRET, mode,
                            schema=schema)
        if not keep:
            _drop_schema(pg_url, schema)
        return result
    db = workdir / f"mirror-{n}-{mode}.db"
    result = run_replay(path, db, workdir / f"report-{n}.{mode}", _gen.SECRET, mode)
    if not keep:
        for f in workdir.glob(f"{db.name}*"):
            f.unlink()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000, help="deliveries for the speed run")
    ap.add_argument("--sample", type=int, default=10_000,
                    help="deliveries timed through construct_event, every (N/sample)-th of "
                         "the file so the mix matches (rate extrapolated)")
    ap.add_argument("--memory-n", type=int, default=0,
                    help="also replay this many deliveries for the peak-memory check "
                         "(the target is stated for 100000)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="replays and construct_event loops, alternately; the best of each counts")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (db, reports)")
    ap.add_argument("--db", default=None, metavar="postgresql://...",
                    help="also replay into this PostgreSQL database (a new schema per run), "
                         "alternately with SQLite; target: >= half the SQLite rate")
    args = ap.parse_args(argv)
    if args.db is not None and not args.db.startswith(("postgresql://", "postgres://")):
        ap.error("--db takes a postgresql:// URL (SQLite is always measured)")

    workdir = Path(tempfile.mkdtemp(prefix="stripectl-bench-"))
    failed = False
    byte_compile()
    try:
        path, gen = generate(args.n, args.sample, workdir, "speed")
        sample = gen.sample
        runs: list[dict[str, Any]] = []
        ce_rates: list[float] = []
        pg_runs: list[dict[str, Any]] = []
        for _ in range(max(1, args.repeat)):
            ce_rates.append(time_construct_event(sample, _gen.SECRET))
            runs.append(replay_once(path, workdir, args.n, args.keep))
            if args.db:
                pg_runs.append(replay_once(path, workdir, args.n, args.keep, pg_url=args.db))
        path.unlink()  # hundreds of MB: not kept while the memory run generates its own
        verify_rate = time_verify_only(sample, _gen.SECRET)
        speed = min(runs, key=lambda r: r["seconds"])
        ce_rate = max(ce_rates)
        rate = args.n / speed["seconds"]
        ratio = rate / ce_rate
        times = ", ".join(f"{r['seconds']:.2f}s" for r in runs)
        print(f"replay-webhook  : {args.n:,} deliveries in {speed['seconds']:.2f}s = "
              f"{rate:,.0f}/s end to end, best of {times} "
              f"(exit {speed['rc']}, summary {speed['summary']})")
        print(f"construct_event : {ce_rate:,.0f}/s, best of "
              f"{', '.join(f'{r:,.0f}' for r in ce_rates)} (in-process loop over every "
              f"{args.n // len(sample)}th delivery, {len(sample):,} in all, rate extrapolated)")
        print(f"verify+parse    : {verify_rate:,.0f}/s (context only, one core: signature check + "
              f"the body's JSON parse, no store)")
        worst = max(r["seconds"] for r in runs)
        ok_speed = ratio >= SPEED_TARGET and all(r["rc"] == 0 for r in runs)
        failed |= not ok_speed
        print(f"ratio           : {ratio:.1f}x construct_event  (target >= {SPEED_TARGET:g}x, "
              f"exit 0)  {_verdict(ok_speed)}; slowest replay against the slowest loop: "
              f"{(args.n / worst) / min(ce_rates):.1f}x")
        print(f"peak memory     : {max(r['maxrss_mb'] for r in runs):.0f} MB for {args.n:,} "
              f"deliveries (replay subprocess max RSS)")
        if pg_runs:
            pg = min(pg_runs, key=lambda r: r["seconds"])
            pg_rate = args.n / pg["seconds"]
            ok_pg = pg_rate >= PG_TARGET * rate and all(r["rc"] == 0 for r in pg_runs)
            failed |= not ok_pg
            print(f"PostgreSQL      : {args.n:,} deliveries in {pg['seconds']:.2f}s = "
                  f"{pg_rate:,.0f}/s end to end, best of "
                  f"{', '.join(_secs(r) for r in pg_runs)} "
                  f"(exit {pg['rc']}, summary {pg['summary']}, peak {pg['maxrss_mb']:.0f} MB)")
            # Each PostgreSQL replay ran right after its SQLite one: the pairs
            # show how far the machine's load moved the ratio within this run.
            pairs = ", ".join(f"{r['seconds'] / p['seconds']:.2f}"
                              for r, p in zip(runs, pg_runs, strict=True))
            print(f"PG / SQLite     : {pg_rate / rate:.2f} of the SQLite rate, best of each (target "
                  f">= {PG_TARGET:g})  {_verdict(ok_pg)}; each alternated pair: {pairs}")
        for r in runs + pg_runs:
            if r["rc"] != 0:
                print(f"replay stderr tail:\n{r['stderr']}", file=sys.stderr)
        if args.memory_n:
            mem_path, _ = generate(args.memory_n, 0, workdir, "memory")
            note = "" if args.memory_n >= MEMORY_TARGET_N else \
                f" (target is stated for {MEMORY_TARGET_N:,})"
            for mode in ("json", "table"):
                mem = replay_once(mem_path, workdir, args.memory_n, args.keep, mode)
                ok_mem = mem["maxrss_mb"] < MEMORY_TARGET_MB and mem["rc"] == 0
                failed |= not ok_mem
                print(f"peak memory     : {mem['maxrss_mb']:.0f} MB for {args.memory_n:,} deliveries, "
                      f"{'--json' if mode == 'json' else 'table '} in {mem['seconds']:.1f}s "
                      f"({args.memory_n / mem['seconds']:,.0f}/s, exit {mem['rc']}, {mem['summary']})  "
                      f"(target < {MEMORY_TARGET_MB:g} MB){note}  {_verdict(ok_mem)}", flush=True)
                if mem["rc"] != 0:
                    print(f"replay stderr tail:\n{mem['stderr']}", file=sys.stderr)
            mem_path.unlink()
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
