"""Start-up time: `stripectl --help`, a subcommand's --help and a completion
request, side by side with the official Stripe CLI's `stripe --help`.

    npm install --prefix /tmp/stripe-cli @stripe/cli     # once, not committed
    python bench/startup.py --stripe /tmp/stripe-cli/node_modules/@stripe/cli-linux-x64/bin/stripe
    python bench/startup.py --runs 30

Without --stripe it looks for STRIPE_CLI_BIN, then `stripe` on PATH (the npm
`bin/stripe` is a Node shim that adds Node's start-up: pass the Go binary
under @stripe/cli-<os>-<arch>/bin/ for a fair figure).

Runs every command --runs times, interleaved (so load on the machine hits
all alike), and prints each median and min and its ratio to `stripe --help`.
With --baseline-src, also times an older checkout's --help (before/after).
Then prints the slowest imports of `stripectl --help` (`python -X importtime`).
The Stripe CLI runs with XDG_CONFIG_HOME in a temp folder: it writes its
config (machine_uuid) on start and must not touch yours.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stripectl_argv() -> list[str]:
    script = Path(sys.executable).parent / "stripectl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "stripectl"]


def find_stripe(explicit: str | None) -> str | None:
    for candidate in (explicit, os.environ.get("STRIPE_CLI_BIN")):
        if candidate and Path(candidate).exists():
            return candidate
    local = ROOT / "bench" / ".stripe-cli" / "node_modules" / "@stripe" / "cli-*" / "bin" / "stripe"
    for pattern in ("/tmp/*/node_modules/@stripe/cli-*/bin/stripe", str(local)):
        import glob

        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return shutil.which("stripe")


def run_once(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    # cwd "/": with -m the current folder is on sys.path, and it must not be a checkout.
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, cwd="/")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stripe", help="path to the Stripe CLI binary")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--baseline-src", help="a checkout of older stripectl code (e.g. /work/main) to time "
                    "its `--help` too, with PYTHONPATH pointing there")
    args = ap.parse_args()

    base = dict(os.environ)
    sx = stripectl_argv()
    cases: list[tuple[str, list[str], dict[str, str]]] = [
        ("stripectl --help", [*sx, "--help"], base),
        ("stripectl reconcile --help", [*sx, "reconcile", "--help"], base),
        ("stripectl replay-webhook --help", [*sx, "replay-webhook", "--help"], base),
        ("complete bash: stripectl re<TAB>", sx,
         {**base, "_STRIPECTL_COMPLETE": "complete_bash", "COMP_WORDS": "stripectl re", "COMP_CWORD": "1"}),
        ("complete zsh: stripectl reconcile --format <TAB>", sx,
         {**base, "_STRIPECTL_COMPLETE": "complete_zsh",
          "_TYPER_COMPLETE_ARGS": "stripectl reconcile --format "}),
        ("complete fish: stripectl payments <TAB>", sx,
         {**base, "_STRIPECTL_COMPLETE": "complete_fish", "_TYPER_COMPLETE_FISH_ACTION": "get-args",
          "_TYPER_COMPLETE_ARGS": "stripectl payments "}),
    ]
    if args.baseline_src:
        # python -S with an explicit path: the editable install's finder (a .pth
        # file) would otherwise import this worktree's code whatever PYTHONPATH says.
        # Both sides run that way, so the pair compares code, not start-up modes.
        import sysconfig

        site = sysconfig.get_paths()["purelib"]
        for label, src in (("before", args.baseline_src), ("after", str(ROOT))):
            env = {**base, "PYTHONPATH": f"{src}:{site}"}
            cases.append((f"{label} (python -S): stripectl --help",
                          [sys.executable, "-S", "-m", "stripectl", "--help"], env))
            cases.append((f"{label} (python -S): stripectl reconcile --help",
                          [sys.executable, "-S", "-m", "stripectl", "reconcile", "--help"], env))
    stripe = find_stripe(args.stripe)
    xdg = tempfile.mkdtemp(prefix="stripe-cli-bench-xdg-")
    if stripe:
        version = subprocess.run([stripe, "version"], capture_output=True, text=True,
                                 env={**base, "XDG_CONFIG_HOME": xdg}, check=False).stdout.split("\n")[0]
        cases.insert(0, ("stripe --help", [stripe, "--help"], {**base, "XDG_CONFIG_HOME": xdg}))
        print(f"Stripe CLI: {stripe} ({version.strip()})")
    else:
        print("Stripe CLI not found: pass --stripe (see the module doc); stripectl figures only")

    for _, argv, env in cases:  # warm the page cache and .pyc files
        run_once(argv, env)
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(args.runs):
        for name, argv, env in cases:
            times[name].append(run_once(argv, env))
    shutil.rmtree(xdg, ignore_errors=True)

    ref = statistics.median(times["stripe --help"]) if stripe else None
    ref_min = min(times["stripe --help"]) if stripe else None
    # Both ratios: on a loaded machine the medians carry the load, the minimums
    # come closest to the programs' own cost.
    print(f"{args.runs} runs each, interleaved; median (min); ratio to stripe --help: median (min)")
    for name, values in times.items():
        med, low = statistics.median(values), min(values)
        ratio = f"  {med / ref:.2f}x ({low / ref_min:.2f}x)" if ref and ref_min else ""
        print(f"  {name:<50} {med * 1000:7.1f} ms ({low * 1000:6.1f}){ratio}")

    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "stripectl", "--help"],
                         capture_output=True, text=True, check=False).stderr
    rows = []
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    total = max((r[0] for r in rows), default=0)
    print("python -X importtime -m stripectl --help: slowest cumulative imports "
          f"(largest {total / 1000:.0f} ms)")
    for cum, name in sorted(rows, reverse=True)[:12]:
        print(f"  {cum / 1000:6.1f} ms {name}")
    loaded = [n.strip() for _, n in rows if n.strip().startswith("stripectl.cli.")]
    print(f"  stripectl.cli modules imported by --help: {', '.join(sorted(set(loaded)))}")
    heavy = [n for n in ("stripe", "sqlite_utils", "typer.rich_utils", "rich.console")
             if any(r[1].strip() == n for r in rows)]
    print(f"  heavy modules imported by --help: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
