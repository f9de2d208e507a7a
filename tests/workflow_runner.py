"""Run a GitHub Actions job locally, the way a runner would, for tests.

Each `run:` step is the step's text with its `${{ }}` expressions substituted,
run by `bash --noprofile --norc -eo pipefail` (GitHub's default shell on
Linux) in the workspace, with the workflow's, the job's and the step's env,
and GITHUB_OUTPUT / GITHUB_ENV / GITHUB_PATH / GITHUB_STEP_SUMMARY files read
back after it. `if:` conditions are evaluated (status functions, contexts,
==, !=, &&, ||, !). The few `uses:` actions the example needs are stood in
for by what they do on a runner:

- actions/checkout: a fresh copy of the repository's tracked files;
- actions/setup-python: a new virtualenv first on PATH (it sees this test
  environment's installed packages, as a runner's pip cache would, so
  `pip install .` needs no network);
- actions/cache/restore and /save: a folder per key, restore-keys matched by
  prefix (newest first), and a save under an existing key recorded as the
  collision it is on GitHub;
- actions/upload-artifact: the files copied to a folder per artifact name.

Any other action fails the step: the test must then learn to run it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent


@dataclass
class StepResult:
    name: str
    id: str | None
    outcome: str  # success | failure | skipped
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class JobResult:
    status: str
    steps: list[StepResult]
    summary: str
    collisions: list[str]

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.name == name)


class Caches:
    """actions/cache storage shared by the runs of one test (one repository)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.saved: list[str] = []  # keys, oldest first

    def folder(self, key: str) -> Path:
        return self.root / re.sub(r"[^A-Za-z0-9._-]", "_", key)


# ---- expressions ----------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*))"
)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot parse expression at {expr[pos:]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _truthy(value: Any) -> bool:
    return value not in (None, "", False, 0)


def _loose(value: Any) -> Any:
    """GitHub's loose equality: null is '', booleans and numbers compare as text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], ctx: dict[str, Any]) -> None:
        self.t, self.i, self.ctx = tokens, 0, ctx

    def peek(self) -> str | None:
        return self.t[self.i][1] if self.i < len(self.t) else None

    def take(self) -> tuple[str, str]:
        tok = self.t[self.i]
        self.i += 1
        return tok

    def parse(self) -> Any:
        value = self.or_()
        if self.i != len(self.t):
            raise ValueError(f"unexpected {self.peek()!r}")
        return value

    def or_(self) -> Any:
        left = self.and_()
        while self.peek() == "||":
            self.take()
            right = self.and_()
            left = left if _truthy(left) else right
        return left

    def and_(self) -> Any:
        left = self.cmp()
        while self.peek() == "&&":
            self.take()
            right = self.cmp()
            left = right if _truthy(left) else left
        return left

    def cmp(self) -> Any:
        left = self.unary()
        while self.peek() in ("==", "!="):
            op = self.take()[1]
            right = self.unary()
            same = _loose(left) == _loose(right)
            left = same if op == "==" else not same
        return left

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return not _truthy(self.unary())
        return self.atom()

    def atom(self) -> Any:
        kind, text = self.take()
        if text == "(":
            value = self.or_()
            self.take()
            return value
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return text
        if self.peek() == "(":  # a function call
            self.take()
            while self.peek() != ")":
                self.take()
            self.take()
            return self.ctx["__functions__"][text]()
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        value: Any = self.ctx
        for part in text.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value


def evaluate(expr: str, ctx: dict[str, Any]) -> Any:
    expr = expr.strip()
    if expr.startswith("${{") and expr.endswith("}}"):
        expr = expr[3:-2]
    return _Parser(_tokens(expr), ctx).parse()


def substitute(text: str, ctx: dict[str, Any]) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _loose(evaluate(m.group(1), ctx)), text)


# ---- the runner -------------------------------------------------------------------


class Runner:
    def __init__(
        self,
        workflow_file: Path,
        root: Path,
        caches: Caches,
        *,
        env: dict[str, str],
        secrets: dict[str, str],
        run_id: int,
        run_attempt: int = 1,
        inputs: dict[str, Any] | None = None,
    ) -> None:
        self.workflow = yaml.safe_load(workflow_file.read_text())
        self.root = root
        self.workspace = root / "workspace"
        self.temp = root / "runner-temp"
        self.artifacts = root / "artifacts"
        for d in (self.workspace, self.temp, self.artifacts):
            d.mkdir(parents=True)
        self.caches = caches
        self.base_env = dict(env)
        self.path_prefix: list[str] = []
        self.extra_env: dict[str, str] = {}
        self.secrets = secrets
        self.github = {
            "run_id": str(run_id),
            "run_attempt": str(run_attempt),
            "workspace": str(self.workspace),
            "ref_name": "main",
            "event_name": "schedule",
            "repository": "example/stripectl",
        }
        self.inputs = inputs or {}
        self.summary = root / "step-summary.md"
        self.summary.write_text("")
        self.collisions: list[str] = []

    def _ctx(self, steps: dict[str, Any], failed: bool, env: dict[str, str]) -> dict[str, Any]:
        return {
            "secrets": self.secrets,
            "github": self.github,
            "inputs": self.inputs,
            "steps": steps,
            "env": env,
            "runner": {"temp": str(self.temp), "os": "Linux"},
            "__functions__": {
                "always": lambda: True,
                "success": lambda: not failed,
                "failure": lambda: failed,
                "cancelled": lambda: False,
            },
        }

    def run_job(self, name: str) -> JobResult:
        job = self.workflow["jobs"][name]
        steps_ctx: dict[str, Any] = {}
        results: list[StepResult] = []
        failed = False
        for n, step in enumerate(job["steps"], 1):
            label = step.get("name") or step.get("uses") or f"step {n}"
            env = {**(self.workflow.get("env") or {}), **(job.get("env") or {})}
            ctx = self._ctx(steps_ctx, failed, {})
            env = {k: substitute(str(v), ctx) for k, v in env.items()}
            ctx = self._ctx(steps_ctx, failed, env)
            env.update({k: substitute(str(v), ctx) for k, v in (step.get("env") or {}).items()})
            condition = step.get("if", "success()")
            condition = condition if isinstance(condition, str) else str(condition).lower()
            wants_status = re.search(r"\b(always|success|failure|cancelled)\(\)", condition)
            run_it = _truthy(evaluate(condition, ctx)) and (wants_status or not failed)
            if not run_it:
                result = StepResult(label, step.get("id"), "skipped")
            elif "run" in step:
                result = self._run(label, step, substitute(step["run"], ctx), env)
            else:
                with_ = {k: substitute(str(v), ctx) for k, v in (step.get("with") or {}).items()}
                result = self._uses(label, step, with_)
            results.append(result)
            if result.outcome == "failure" and not step.get("continue-on-error"):
                failed = True
            if step.get("id"):
                steps_ctx[step["id"]] = {
                    "outputs": result.outputs,
                    "outcome": result.outcome,
                    "conclusion": result.outcome,
                }
        return JobResult(
            "failure" if failed else "success", results, self.summary.read_text(), self.collisions
        )

    # ---- run: steps ---------------------------------------------------------------

    def _run(self, label: str, step: dict[str, Any], script: str, env: dict[str, str]) -> StepResult:
        names = ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH")
        files = {k: self.temp / f"{k.lower()}-{time.monotonic_ns()}" for k in names}
        for p in files.values():
            p.write_text("")
        script_file = self.temp / f"step-{time.monotonic_ns()}.sh"
        script_file.write_text(script)
        full_env = {
            **self.base_env,
            **self.extra_env,
            **env,
            **{k: str(v) for k, v in files.items()},
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_RUN_ID": self.github["run_id"],
            "GITHUB_RUN_ATTEMPT": self.github["run_attempt"],
            "RUNNER_TEMP": str(self.temp),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
        }
        full_env["PATH"] = os.pathsep.join([*self.path_prefix, self.base_env.get("PATH", "/usr/bin:/bin")])
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
            cwd=self.workspace / step.get("working-directory", "."),
            env=full_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        for line in files["GITHUB_ENV"].read_text().splitlines():
            if "=" in line:
                k, _, v = line.partition("=")
                self.extra_env[k] = v
        self.path_prefix = [p for p in files["GITHUB_PATH"].read_text().splitlines() if p] + self.path_prefix
        return StepResult(
            label,
            step.get("id"),
            "success" if proc.returncode == 0 else "failure",
            proc.returncode,
            proc.stdout,
            proc.stderr,
            _outputs(files["GITHUB_OUTPUT"].read_text()),
        )

    # ---- uses: steps --------------------------------------------------------------

    def _uses(self, label: str, step: dict[str, Any], with_: dict[str, str]) -> StepResult:
        action = step["uses"].split("@")[0]
        result = StepResult(label, step.get("id"), "success")
        if action == "actions/checkout":
            files = subprocess.run(
                ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True
            ).stdout.decode().split("\0")
            for rel in filter(None, files):
                src = REPO / rel
                if src.is_file():
                    (self.workspace / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, self.workspace / rel)
        elif action == "actions/setup-python":
            venv = self.temp / "python"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
            site = subprocess.run(
                [str(venv / "bin" / "python"), "-c", purelib],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
            Path(site, "runner-tool-cache.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
            self.path_prefix.insert(0, str(venv / "bin"))
        elif action == "actions/cache/restore":
            key = with_["key"]
            prefixes = [k.strip() for k in with_.get("restore-keys", "").splitlines() if k.strip()]
            matched = key if key in self.caches.saved else next(
                (k for p in prefixes for k in reversed(self.caches.saved) if k.startswith(p)), ""
            )
            if matched:
                dest = self.workspace / with_["path"]
                shutil.copytree(self.caches.folder(matched), dest, dirs_exist_ok=True)
            result.outputs = {
                "cache-hit": "true" if matched == key else "false",
                "cache-primary-key": key,
                "cache-matched-key": matched,
            }
        elif action == "actions/cache/save":
            key, src = with_["key"], self.workspace / with_["path"]
            if key in self.caches.saved:
                # GitHub: "Unable to reserve cache with key ...": a warning, nothing saved.
                self.collisions.append(key)
            elif src.exists():
                shutil.copytree(src, self.caches.folder(key))
                self.caches.saved.append(key)
        elif action == "actions/upload-artifact":
            dest = self.artifacts / with_["name"]
            dest.mkdir(parents=True, exist_ok=True)
            for rel in (p.strip() for p in with_["path"].splitlines() if p.strip()):
                if (self.workspace / rel).is_file():
                    shutil.copy2(self.workspace / rel, dest / Path(rel).name)
        else:
            result.outcome, result.stderr = "failure", f"no stand-in for action {action}"
        return result


def _outputs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            key, _, delim = line.partition("<<")
            value = []
            for inner in lines:
                if inner == delim:
                    break
                value.append(inner)
            out[key] = "\n".join(value)
        elif "=" in line:
            key, _, value = line.partition("=")
            out[key] = value
    return out
