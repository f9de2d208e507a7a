"""The options of every command that calls Stripe, and what goes wrong before a request.

- A usage or config error (no key, a live key without --live, a pk_ key, a bad
  flag) leaves no mirror file behind: it once left a 1.7 MB ./stripectl.db.
- --timeout and --network-retries exist on every such command (they were
  documented for all but existed on payments and checkout only).
- A network error is one `error:` line and a `hint:`, not the SDK's four lines.
- --live with a test key says so.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.replay_helpers import run

COMMANDS: dict[str, list[str]] = {
    "sync": ["sync"],
    "sync-since": ["sync", "--since", "cursor"],
    "reconcile": ["reconcile"],
    "access": ["access", "cus_1"],
    "events-pull": ["events", "pull", "--since", "2h"],
    "payments": ["payments", "create", "--amount", "100", "--currency", "usd", "--order-ref", "ord_opt"],
    "checkout": [
        "checkout", "create", "--mode", "payment", "--price", "price_1", "--user-id", "u_1",
        "--success-url", "https://example.com/done",
    ],
    "webhook-audit": ["webhook", "audit"],
}
IDS = list(COMMANDS)


def _dead_url() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("name", IDS)
@pytest.mark.parametrize(
    "key, why",
    [
        (None, "no Stripe API key"),
        ("sk_live_51FAKEFAKEFAKEFAKE0000000000", "LIVE key"),
        ("pk_test_51FAKEFAKEFAKEFAKE0000000000", "publishable"),
        ("whsec_notakey000000000000", "does not look like"),
    ],
    ids=["no-key", "live-key", "pk-key", "not-a-key"],
)
def test_config_errors_create_no_mirror_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, key: str | None, why: str
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [*COMMANDS[name], "--api-base", _dead_url()]
    if key is not None:
        args += ["--api-key", key]
    result = run(*args)
    assert result.exit_code == 3, result.output
    assert why in result.stderr
    assert list(tmp_path.iterdir()) == [], "a config error left a file"


@pytest.mark.parametrize(
    "args",
    [
        ["reconcile", "--history", "--format", "junit"],
        ["reconcile", "--report", "yaml:x.yml"],
        ["reconcile", "--report", "junit:/nonexistent/dir/x.xml"],
        ["reconcile", "--yes"],
        ["sync", "--since", "yesterday-ish"],
        ["access", "user_1", "--max-age", "1h"],
        ["access", "user_1", "--grace", "sometimes"],
        ["events", "pull", "--since", "soon"],
        ["events", "pull"],  # no cursor in a mirror that does not exist
        ["sync", "--api-base", "ftp://127.0.0.1:1"],
    ],
)
def test_usage_errors_create_no_mirror_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(*args, "--api-key", "sk_test_51FAKE0000000000000000")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: "), result.stderr
    assert list(tmp_path.iterdir()) == [], "a usage error left a file"


@pytest.mark.parametrize("name", IDS)
def test_timeout_and_retries_on_every_command_and_one_line_network_error(
    tmp_path: Path, name: str
) -> None:
    url = _dead_url()
    result = run(
        *COMMANDS[name],
        "--api-key", "sk_test_51FAKE0000000000000000",
        "--api-base", url,
        "--timeout", "2",
        "--network-retries", "0",
        "--db", str(tmp_path / "m.db"),
    )
    assert result.exit_code == 5, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: cannot reach Stripe at {url}"), lines
    assert lines[lines.index(errors[0]) + 1].startswith("hint: "), lines
    assert "Unexpected error communicating" not in result.stderr
    assert "support@stripe.com" not in result.stderr and "Network error" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["sync", "reconcile", "payments"])
def test_live_with_a_test_key_says_so(tmp_path: Path, name: str) -> None:
    result = run(
        *COMMANDS[name],
        "--live",
        "--api-key", "sk_test_51FAKE0000000000000000",
        "--api-base", _dead_url(),
        "--network-retries", "0",
        "--db", str(tmp_path / "m.db"),
    )
    assert "--live" in result.stderr and "test-mode key" in result.stderr, result.stderr


@pytest.mark.parametrize("placement", ["flag", "env"])
def test_api_key_flag_beats_the_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, placement: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STRIPE_API_KEY", "pk_test_from_the_environment_000000")
    monkeypatch.setenv("STRIPECTL_API_BASE", "ftp://not-used-when-the-flag-is-given")
    args = ["sync", "--network-retries", "0", "--db", str(tmp_path / "m.db")]
    if placement == "flag":
        args += ["--api-key", "sk_test_51FAKE0000000000000000", "--api-base", _dead_url()]
        assert run(*args).exit_code == 5  # got as far as the network
    else:
        result = run(*args)
        assert result.exit_code == 3 and "publishable" in result.stderr


@pytest.mark.parametrize(
    "args, code",
    [
        (["replay-webhook", "{d}"], 3),  # no secret
        (["replay-webhook", "{d}", "--secret", "whsec_x", "--events", "many"], 2),
        (["replay-webhook", "{d}", "--secret", "whsec_x", "--subscriptions", "many"], 2),
        (["replay-webhook", "nonexistent.jsonl", "--secret", "whsec_x"], 2),
        (["replay-webhook", "{d}", "--secret", "whsec_x", "--sign-with", "whsec_y"], 2),
        (["webhook", "listen"], 3),
        (["webhook", "listen", "--secret", "whsec_x", "--path", "nope"], 2),
        (["inbox", "export"], 2),
        (["inbox", "prune", "--bodies"], 2),
        (["access", "user_1", "--offline", "--max-age", "soon"], 2),
        (["reconcile", "--history", "--format", "yaml"], 2),
    ],
)
def test_other_commands_leave_no_file_on_a_usage_or_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    d = tmp_path / "d.jsonl"
    d.write_text("{}\n")
    result = run(*[a.replace("{d}", str(d)) for a in args])
    assert result.exit_code == code, result.output
    assert list(work.iterdir()) == [], "an error left a file"


@pytest.mark.parametrize("args", [["webhook", "audit"], ["webhook", "probe", "http://127.0.0.1:9/x"]])
@pytest.mark.parametrize("fmt", ["markdown", "junit"])
def test_json_with_another_format_is_refused_by_probe_and_audit(args: list[str], fmt: str) -> None:
    result = run("--json", *args, "--format", fmt, "--secret", "whsec_x") if "probe" in args else run(
        "--json", *args, "--format", fmt
    )
    assert result.exit_code == 2 and "--json and --format" in result.stderr, result.output


def test_a_timeout_is_one_line_too(tmp_path: Path) -> None:
    """A server that accepts the connection and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        result = run(
            "reconcile", "--api-key", "sk_test_51FAKE0000000000000000", "--api-base", url,
            "--timeout", "1", "--network-retries", "0", "--db", str(tmp_path / "m.db"),
        )
    assert result.exit_code == 5, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"error: cannot reach Stripe at {url}: timed out", lines
    assert lines[1].startswith("hint: ") and "--timeout 1 s" in lines[1] and len(lines) == 2
