"""Shell completion, exercised as bash, zsh and fish call it: the real entry point
in a subprocess with _STRIPECTL_COMPLETE and the shell's variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stripectl.cli.app import COMMANDS


def _complete(env: dict[str, str], *, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("_TYPER", "COMP_", "_STRIPECTL"))}
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "stripectl"]
    return subprocess.run(argv, env={**base, **env}, capture_output=True, text=True, timeout=60)


def bash(line: str) -> list[str]:
    words = line.split(" ")
    res = _complete({"_STRIPECTL_COMPLETE": "complete_bash", "COMP_WORDS": line,
                     "COMP_CWORD": str(len(words) - 1)})
    assert res.returncode == 0, res.stderr
    return [w for w in res.stdout.split("\n") if w]


def zsh(line: str) -> str:
    res = _complete({"_STRIPECTL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": line})
    assert res.returncode == 0, res.stderr
    return res.stdout


def fish(line: str, action: str = "get-args") -> subprocess.CompletedProcess[str]:
    return _complete({"_STRIPECTL_COMPLETE": "complete_fish", "_TYPER_COMPLETE_FISH_ACTION": action,
                      "_TYPER_COMPLETE_ARGS": line})


def test_bash_completes_command_names_from_the_table() -> None:
    assert bash("stripectl re") == ["replay-webhook", "refunds", "reconcile"]
    assert set(bash("stripectl ")) >= set(COMMANDS)


def test_command_names_are_completed_without_importing_any_command_module() -> None:
    res = _complete({"_STRIPECTL_COMPLETE": "complete_bash", "COMP_WORDS": "stripectl h",
                     "COMP_CWORD": "1"}, importtime=True)
    assert res.stdout.split() == ["history"]
    modules = {e.target.partition(":")[0] for e in COMMANDS.values()}
    imported = {line.split("|")[-1].strip() for line in res.stderr.splitlines()}
    assert modules & imported == set()
    assert "typer.rich_utils" not in imported and "stripe" not in imported


def test_bash_completes_flags_subcommands_and_format_values() -> None:
    assert {"--format", "--fix"} <= set(bash("stripectl reconcile --f"))
    assert bash("stripectl reconcile --format j") == ["json", "jsonl", "junit"]
    assert bash("stripectl payments ") == ["create", "capture", "cancel", "show"]
    assert "--project-name" in bash("stripectl sync --pro")


def test_a_path_argument_is_left_to_the_shells_file_completion(tmp_path: Path) -> None:
    # bash: no candidates -> `complete -o default` completes file names.
    assert bash("stripectl replay-webhook exa") == []
    assert bash("stripectl reconcile --output ou") == []
    # zsh: the script's fallback is _files.
    assert zsh("stripectl replay-webhook ").strip() == "_files"
    # fish: is-args fails, so fish offers files.
    assert fish("stripectl replay-webhook ", "is-args").returncode == 1


def test_zsh_and_fish_show_help_next_to_each_candidate() -> None:
    out = zsh("stripectl pay")
    assert out.startswith("_arguments") and '"payments":"Idempotent payment intents.' in out
    res = fish("stripectl payments ")
    assert res.returncode == 0 and res.stdout.startswith("create\tCreate a PaymentIntent")
    assert fish("stripectl payments ", "is-args").returncode == 0


# typer detects the shell from the parent process (shellingham). Only bash is
# installed here, so the zsh and fish scripts are asked for by name through
# typer's own switch for that, _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION.
NAMED = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_the_script_for_each_shell(shell: str) -> None:
    res = subprocess.run([sys.executable, "-m", "stripectl", "--show-completion", shell],
                         capture_output=True, text=True, timeout=60, env={**os.environ, **NAMED})
    assert res.returncode == 0, res.stderr
    assert f"_STRIPECTL_COMPLETE=complete_{shell}" in res.stdout
    assert "stripectl" in res.stdout


def test_show_completion_detects_bash_when_run_from_bash() -> None:
    res = subprocess.run(["bash", "-c", f"{sys.executable} -m stripectl --show-completion"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "complete_bash" in res.stdout


@pytest.mark.parametrize(
    ("shell", "script"),
    [("bash", ".bash_completions/stripectl.sh"), ("zsh", ".zfunc/_stripectl"),
     ("fish", ".config/fish/completions/stripectl.fish")],
)
def test_install_completion_writes_the_script_into_home(tmp_path: Path, shell: str, script: str) -> None:
    env = {**os.environ, **NAMED, "HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "stripectl", "--install-completion", shell],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert f"complete_{shell}" in (tmp_path / script).read_text()


def test_the_completion_script_really_completes_in_bash(tmp_path: Path) -> None:
    """bash sources the script and runs its function as Tab would."""
    show = subprocess.run([sys.executable, "-m", "stripectl", "--show-completion", "bash"],
                          capture_output=True, text=True, env={**os.environ, **NAMED}, timeout=60)
    (tmp_path / "c.sh").write_text(show.stdout)
    shim = tmp_path / "bin" / "stripectl"
    shim.parent.mkdir()
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m stripectl \"$@\"\n")
    shim.chmod(0o755)
    script = (
        f"export PATH={shim.parent}:$PATH; source {tmp_path / 'c.sh'}; "
        "COMP_WORDS=(stripectl reco); COMP_CWORD=1; _stripectl_completion stripectl; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == ["reconcile"], res.stderr


def test_project_name_completes_the_stripe_cli_profiles(tmp_path: Path) -> None:
    (tmp_path / "stripe").mkdir()
    (tmp_path / "stripe" / "config.toml").write_text(
        "project-name = 'default'\n[default]\ndisplay_name = 'a'\n[work]\ndisplay_name = 'b'\n"
    )
    env = {"XDG_CONFIG_HOME": str(tmp_path), "_STRIPECTL_COMPLETE": "complete_bash"}
    after = _complete({**env, "COMP_WORDS": "stripectl sync -p ", "COMP_CWORD": "3"})
    before = _complete({**env, "COMP_WORDS": "stripectl --project-name w", "COMP_CWORD": "2"})
    assert after.stdout.split() == ["default", "work"]
    assert before.stdout.split() == ["work"]
