"""The key `stripe login` stored: found, chosen and refused as the Stripe CLI does.

Each test writes a Stripe CLI config into a temp XDG_CONFIG_HOME and runs the
real `stripectl` entry point in a subprocess with env=... (no monkeypatching).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TEST_KEY = "sk_test_51FakeDefaultKey0000aaaa"
WORK_KEY = "sk_test_51FakeWorkKey00000bbbb"
ENV_KEY = "sk_test_51FakeEnvKey000000cccc"
FLAG_KEY = "sk_test_51FakeFlagKey00000dddd"
LIVE_KEY = "sk_live_51FakeLiveKey00000eeee"

CONFIG = f"""
color = ''
project-name = 'default'

[default]
display_name = 'Fake default account'
test_mode_api_key = '{TEST_KEY}'
test_mode_key_expires_at = '2099-01-01'
live_mode_api_key = 'sk_live_****************eeee'
live_mode_key_expires_at = '2099-01-01'

[work]
display_name = 'Fake work account'
test_mode_api_key = '{WORK_KEY}'
test_mode_key_expires_at = '2099-06-30'

[old]
display_name = 'Expired'
test_mode_api_key = 'sk_test_51FakeOldKey000000ffff'
test_mode_key_expires_at = '2020-01-01'

[team.eu]
display_name = 'A dotted profile name'
test_mode_api_key = 'sk_test_51FakeDottedKey000gggg'
"""


def stripectl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE", "XDG_"))}
    return subprocess.run(
        [sys.executable, "-m", "stripectl", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def xdg(tmp_path: Path) -> Path:
    folder = tmp_path / "xdg"
    (folder / "stripe").mkdir(parents=True)
    (folder / "stripe" / "config.toml").write_text(CONFIG)
    return folder


def show(xdg: Path, *args: str, **env: str) -> tuple[int, dict[str, object]]:
    res = stripectl("config", "show", "--json", "--db", str(xdg / "none.db"), *args,
                    env={"XDG_CONFIG_HOME": str(xdg), **env})
    return res.returncode, json.loads(res.stdout)


def test_default_profile_test_key_from_the_stripe_cli_config(xdg: Path) -> None:
    code, r = show(xdg)
    assert code == 0
    key = r["key"]
    assert key["source"] == "stripe-cli" and key["redacted"] == "sk_test_...aaaa"  # type: ignore[index]
    assert key["expires_at"] == "2099-01-01"  # type: ignore[index]
    assert r["profile"] == {"name": "default", "from": "config project-name"}
    assert TEST_KEY not in json.dumps(r)


def test_precedence_flag_over_env_over_file(xdg: Path) -> None:
    _, from_env = show(xdg, STRIPE_API_KEY=ENV_KEY)
    assert from_env["key"]["source"] == "env:STRIPE_API_KEY"  # type: ignore[index]
    _, from_flag = show(xdg, "--api-key", FLAG_KEY, STRIPE_API_KEY=ENV_KEY)
    assert from_flag["key"]["source"] == "flag"  # type: ignore[index]
    assert from_flag["key"]["redacted"] == "sk_test_...dddd"  # type: ignore[index]


def test_project_name_flag_over_env_over_file_default(xdg: Path) -> None:
    _, env_only = show(xdg, STRIPE_PROJECT_NAME="work")
    assert env_only["profile"] == {"name": "work", "from": "env STRIPE_PROJECT_NAME"}
    assert env_only["key"]["redacted"] == "sk_test_...bbbb"  # type: ignore[index]
    # -p after the command and before it, both beat the env var.
    _, after = show(xdg, "-p", "default", STRIPE_PROJECT_NAME="work")
    assert after["profile"]["name"] == "default"  # type: ignore[index]
    res = stripectl("--project-name", "work", "config", "show", "--json",
                    env={"XDG_CONFIG_HOME": str(xdg), "STRIPE_PROJECT_NAME": "default"})
    assert json.loads(res.stdout)["key"]["redacted"] == "sk_test_...bbbb"


def test_profile_name_with_a_period_is_a_nested_table(xdg: Path) -> None:
    code, r = show(xdg, "-p", "team.eu")
    assert code == 0 and r["key"]["redacted"] == "sk_test_...gggg"  # type: ignore[index]


def test_expired_key_is_a_clear_config_error_with_a_login_hint(xdg: Path) -> None:
    res = stripectl("sync", "-p", "old", "--api-base", "http://127.0.0.1:9", "--db",
                    str(xdg / "m.db"), env={"XDG_CONFIG_HOME": str(xdg)})
    assert res.returncode == 3
    assert "expired on 2020-01-01" in res.stderr
    assert "hint: run `stripe login --project-name=old`" in res.stderr
    assert "Traceback" not in res.stderr


def test_unknown_profile_names_the_file_and_the_login_command(xdg: Path) -> None:
    code, r = show(xdg, "-p", "nope")
    assert code == 3
    assert "no Stripe CLI profile 'nope'" in r["key"]["error"]  # type: ignore[index]
    assert "stripe login --project-name=nope" in r["key"]["hint"]  # type: ignore[index]


def test_live_key_in_the_os_keyring_is_reported_not_silently_missing(xdg: Path) -> None:
    code, r = show(xdg, "--live")
    assert code == 3
    err = r["key"]["error"]  # type: ignore[index]
    assert "OS keyring" in err and "default.live_mode_api_key" in err and "StripeCLI" in err
    assert "--api-key" in r["key"]["hint"]  # type: ignore[index]


def test_live_key_from_the_cli_credentials_fallback_file(xdg: Path) -> None:
    (xdg / "stripe" / "credentials.json").write_text(
        json.dumps({"default.live_mode_api_key": LIVE_KEY})
    )
    code, r = show(xdg, "--live")
    assert code == 0 and r["key"]["redacted"] == "sk_live_...eeee"  # type: ignore[index]
    assert r["mode"] == "live"
    assert LIVE_KEY not in json.dumps(r)


def test_no_key_anywhere_says_where_it_looked(tmp_path: Path) -> None:
    code, r = show(tmp_path)
    assert code == 3
    assert str(tmp_path / "stripe" / "config.toml") in r["key"]["error"]  # type: ignore[index]
    assert "stripe login" in r["key"]["hint"]  # type: ignore[index]


def test_explicit_stripe_config_path_and_home_default(xdg: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text(f"[default]\ntest_mode_api_key = '{WORK_KEY}'\n")
    code, r = show(tmp_path / "empty-xdg", "--stripe-config", str(other))
    assert code == 0 and r["key"]["redacted"] == "sk_test_...bbbb"  # type: ignore[index]
    # No XDG_CONFIG_HOME (or an empty one): ~/.config/stripe/config.toml.
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (xdg / "stripe").rename(home / ".config" / "stripe")
    res = stripectl("config", "show", "--json", env={"HOME": str(home), "XDG_CONFIG_HOME": ""})
    assert json.loads(res.stdout)["key"]["redacted"] == "sk_test_...aaaa"


def test_the_stripe_cli_files_are_never_written(xdg: Path) -> None:
    cfg = xdg / "stripe" / "config.toml"
    cfg.chmod(0o400)
    (xdg / "stripe").chmod(0o500)
    try:
        before = (cfg.read_bytes(), cfg.stat().st_mtime_ns, sorted(os.listdir(xdg / "stripe")))
        code, _ = show(xdg)
        show(xdg, "--live")
        after = (cfg.read_bytes(), cfg.stat().st_mtime_ns, sorted(os.listdir(xdg / "stripe")))
    finally:
        (xdg / "stripe").chmod(0o700)
    assert code == 0 and before == after


def test_debug_says_where_the_key_came_from_without_printing_it(xdg: Path) -> None:
    res = stripectl("--debug", "sync", "--api-base", "http://127.0.0.1:9", "--db",
                    str(xdg / "m.db"), env={"XDG_CONFIG_HOME": str(xdg)})
    assert "debug: Stripe key sk_test_...aaaa from Stripe CLI profile 'default'" in res.stderr
    assert TEST_KEY not in res.stderr + res.stdout


def test_broken_toml_is_a_config_error_not_a_traceback(xdg: Path) -> None:
    (xdg / "stripe" / "config.toml").write_text("[default\ntest_mode_api_key = 'sk_test_x'\n")
    code, r = show(xdg)
    assert code == 3 and "not valid TOML" in r["key"]["error"]  # type: ignore[index]


def test_config_show_reports_mirror_mode_and_webhook_secrets(xdg: Path, tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "m.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("CREATE TABLE events (delivery_id TEXT)")
    conn.execute("INSERT INTO meta VALUES ('livemode', '1')")
    conn.commit()
    conn.close()
    res = stripectl("config", "show", "--json", "--db", str(db), env={
        "XDG_CONFIG_HOME": str(xdg), "STRIPE_WEBHOOK_SECRET": "whsec_fakefakefakefake1111",
    })
    r = json.loads(res.stdout)
    assert r["mirror"]["exists"] and r["mirror"]["mode"] == "live"
    assert r["webhook_secrets"] == [{"redacted": "whsec_...1111", "from": "env STRIPE_WEBHOOK_SECRET"}]
    text = stripectl("config", "show", "--db", str(db), env={"XDG_CONFIG_HOME": str(xdg)}).stdout
    assert "live-mode data, the key is test" in text
    assert not (Path.cwd() / "none.db").exists()


def test_config_show_reads_a_server_mirror_without_creating_one(xdg: Path, pg_url: str) -> None:
    from stripectl.store import SCHEMA_VERSION, open_store

    # The test server trusts its clients: a password in the URL is accepted and ignored.
    url = pg_url.replace("postgresql://postgres@", "postgresql://postgres:pw_not_shown@")
    env = {"XDG_CONFIG_HOME": str(xdg)}
    r = json.loads(stripectl("config", "show", "--json", "--db", url, env=env).stdout)
    assert r["mirror"]["exists"] is False and "pw_not_shown" not in json.dumps(r)
    assert r["mirror"]["path"] == url.replace("pw_not_shown", "***")
    store = open_store(pg_url)  # nothing was created by the look above: migrated here
    try:
        with store.transaction():
            store.meta_set("livemode", "0")
    finally:
        store.close()
    res = stripectl("config", "show", "--json", "--db", url, env=env)
    r = json.loads(res.stdout)
    assert r["mirror"]["exists"] is True and r["mirror"]["mode"] == "test"
    assert r["mirror"]["deliveries"] == 0 and r["mirror"]["schema_version"] == SCHEMA_VERSION
    other = json.loads(stripectl("--schema", "other", "config", "show", "--json", "--db", url,
                                 env=env).stdout)
    assert other["mirror"]["exists"] is False
    text = stripectl("config", "show", "--db", url, env=env).stdout
    assert "0 deliveries" in text and "pw_not_shown" not in text


def test_a_command_calls_stripe_with_the_profiles_key(xdg: Path, localstripe_url: str) -> None:
    """Through the real stripe-python HTTP stack to localstripe: the file's key works."""
    res = stripectl("sync", "--api-base", localstripe_url, "--db", str(xdg / "m.db"), "--json",
                    "--debug", env={"XDG_CONFIG_HOME": str(xdg)})
    assert res.returncode == 0, res.stderr
    assert "summary" in json.loads(res.stdout)
    assert "from Stripe CLI profile 'default'" in res.stderr
    none = stripectl("sync", "--api-base", localstripe_url, "--db", str(xdg / "n.db"),
                     env={"XDG_CONFIG_HOME": str(xdg / "nowhere")})
    assert none.returncode == 3 and "no Stripe API key" in none.stderr
