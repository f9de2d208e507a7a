"""Reading the key that `stripe login` stored, the way the Stripe CLI reads it.

Read-only: this module opens the Stripe CLI's files for reading and nothing
else (the CLI owns them and rewrites them on every login).

Follows stripe/stripe-cli pkg/config (config.go, profile.go) and pkg/cmd/root.go:

- The file: `--config FILE` (here `--stripe-config`), else
  `$XDG_CONFIG_HOME/stripe/config.toml` (an empty XDG_CONFIG_HOME counts as
  unset), else `~/.config/stripe/config.toml` (config.getConfigFolder). The CLI
  reads no STRIPE_CONFIG_PATH variable, so neither does stripectl.
- The profile: `-p/--project-name`, else STRIPE_PROJECT_NAME, else the file's
  top-level `project-name` key, else "default" (root.go bindEnv/ReBindKeys:
  flag > env > config > default). Profile tables are looked up
  case-insensitively (viper lower-cases keys) and a name with a period is a
  nested table, as viper reads it.
- Test mode: the profile's `test_mode_api_key`, where the legacy `secret_key`
  and then `api_key` fields take precedence when present (profile.go
  GetAPIKey registers them as aliases of test_mode_api_key).
- Live mode: the file only holds a redacted `live_mode_api_key`; the real key
  is in the OS keyring (service "StripeCLI", item "<profile>.live_mode_api_key"),
  or, where the keyring was unavailable at login, in the plain-text
  `credentials.json` next to the XDG config (pkg/keyring fileStore). stripectl
  reads that file but not the OS keyring, and says so.
- `test_mode_key_expires_at` / `live_mode_key_expires_at` hold a date
  (YYYY-MM-DD, login + 90 days); from that date's midnight UTC on the key is
  treated as expired.
- A key must look like validators.APIKey wants: 12+ characters, three
  `_`-separated parts, sk_/rk_/rkcs_ prefix.

Unlike the Stripe CLI (where STRIPE_API_KEY beats --api-key), stripectl's
explicit flag wins over the environment, which wins over the file.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from stripectl.errors import ConfigError
from stripectl.redact import mask

KEYRING_SERVICE = "StripeCLI"  # profile.go KeyManagementService
DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class KeyChoice:
    """The key to use and where it came from (for --debug and `config show`)."""

    key: str = field(repr=False)
    source: str  # flag | env:STRIPE_API_KEY | env:STRIPE_SECRET_KEY | stripe-cli
    detail: str  # a sentence for people, never the key
    profile: str | None = None
    profile_from: str | None = None
    config_path: str | None = None
    expires_at: str | None = None

    @property
    def redacted(self) -> str:
        return mask(self.key)


@dataclass(frozen=True)
class ProfileChoice:
    name: str
    source: str  # --project-name | env STRIPE_PROJECT_NAME | config project-name | default


def config_file(explicit: str | None, env: Mapping[str, str]) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    return _config_folder(env) / "config.toml"


def credentials_file(env: Mapping[str, str]) -> Path:
    """config.CredentialsFilePath: always the XDG folder, whatever --config says."""
    return _config_folder(env) / "credentials.json"


def _config_folder(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base else Path(env.get("HOME") or Path.home()) / ".config"
    return root / "stripe"


def read_config(path: Path) -> dict[str, Any] | None:
    """The parsed file, or None when it does not exist."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ConfigError(f"the Stripe CLI config {path} is a folder, not a file") from None
    except PermissionError:
        raise ConfigError(f"cannot read the Stripe CLI config {path}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        # The message names a line and column, never the content.
        raise ConfigError(
            f"the Stripe CLI config {path} is not valid TOML: {exc}",
            hint="fix or remove it, or run `stripe login` again",
        ) from None


def choose_profile(flag: str | None, env: Mapping[str, str], doc: Mapping[str, Any] | None) -> ProfileChoice:
    if flag:
        return ProfileChoice(flag, "--project-name")
    if env.get("STRIPE_PROJECT_NAME"):
        return ProfileChoice(env["STRIPE_PROJECT_NAME"], "env STRIPE_PROJECT_NAME")
    from_file = (doc or {}).get("project-name")
    if isinstance(from_file, str) and from_file:
        return ProfileChoice(from_file, "config project-name")
    return ProfileChoice(DEFAULT_PROFILE, "default")


def profile_table(doc: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    node: Any = doc
    for part in name.split("."):
        if not isinstance(node, Mapping):
            return None
        match = next((v for k, v in node.items() if str(k).lower() == part.lower()), None)
        if match is None:
            return None
        node = match
    return dict(node) if isinstance(node, Mapping) else None


def _login_hint(profile: str) -> str:
    # root.go apiKeyExpiredMessage: the named-profile form carries --project-name.
    if profile == DEFAULT_PROFILE:
        return "run `stripe login`, or pass --api-key / set STRIPE_API_KEY"
    return f"run `stripe login --project-name={profile}`, or pass --api-key / set STRIPE_API_KEY"


def check_key_shape(key: str, where: str) -> None:
    """validators.APIKey, with the key itself kept out of the message."""
    parts = key.split("_")
    if len(key) < 12 or len(parts) < 3 or parts[0] not in ("sk", "rk", "rkcs"):
        raise ConfigError(
            f"the key in {where} ({mask(key)}) does not look like a Stripe secret or restricted key",
            hint="run `stripe login` again, or pass --api-key",
        )


def _expiry(table: Mapping[str, Any], field_name: str, profile: str, now: datetime) -> str | None:
    raw = table.get(field_name)
    if raw in (None, ""):
        return None
    text = raw.isoformat() if isinstance(raw, date) else str(raw)
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        return text  # unreadable: shown, not enforced (the CLI's whoami ignores it too)
    if now >= datetime(day.year, day.month, day.day, tzinfo=UTC):
        mode = "live" if field_name.startswith("live") else "test"
        raise ConfigError(
            f"the Stripe CLI's {mode}-mode key for profile {profile!r} expired on {day.isoformat()}",
            hint=_login_hint(profile),
        )
    return day.isoformat()


def key_from_stripe_cli(
    *,
    live: bool,
    project_flag: str | None,
    config_flag: str | None,
    env: Mapping[str, str],
    now: datetime | None = None,
) -> KeyChoice:
    """The key `stripe login` stored for the chosen profile, or a ConfigError
    that says what is missing and what to run."""
    now = now or datetime.now(UTC)
    path = config_file(config_flag, env)
    doc = read_config(path)
    profile = choose_profile(project_flag, env, doc)
    if doc is None:
        raise ConfigError(
            f"no Stripe API key: no --api-key, no STRIPE_API_KEY, and no Stripe CLI config at {path}",
            hint="pass --api-key, set STRIPE_API_KEY (use an sk_test_ key), or run `stripe login`",
        )
    table = profile_table(doc, profile.name)
    if table is None:
        raise ConfigError(
            f"no Stripe CLI profile {profile.name!r} in {path} (chosen by {profile.source})",
            hint=_login_hint(profile.name),
        )
    base = {
        "source": "stripe-cli", "profile": profile.name, "profile_from": profile.source,
        "config_path": str(path),
    }
    if not live:
        field_name = next(
            (f for f in ("secret_key", "api_key", "test_mode_api_key") if table.get(f)), None
        )
        if field_name is None:
            raise ConfigError(
                f"Stripe CLI profile {profile.name!r} in {path} has no test_mode_api_key",
                hint=_login_hint(profile.name),
            )
        key = str(table[field_name]).strip()
        expires = _expiry(table, "test_mode_key_expires_at", profile.name, now)
        check_key_shape(key, f"{path} [{profile.name}] {field_name}")
        return KeyChoice(
            key=key, detail=f"Stripe CLI profile {profile.name!r} ({field_name}) in {path}",
            expires_at=expires, **base,
        )
    expires = _expiry(table, "live_mode_key_expires_at", profile.name, now)
    item = f"{profile.name}.live_mode_api_key"
    creds_path = credentials_file(env)
    live_key = _from_credentials_file(creds_path, item)
    if live_key:
        check_key_shape(live_key, f"{creds_path} {item}")
        return KeyChoice(
            key=live_key, detail=f"Stripe CLI profile {profile.name!r} (live key in {creds_path})",
            expires_at=expires, **base,
        )
    if table.get("live_mode_api_key"):
        raise ConfigError(
            f"the Stripe CLI keeps the live key of profile {profile.name!r} in the OS keyring "
            f"(service {KEYRING_SERVICE!r}, item {item!r}); stripectl does not read the keyring "
            "(the config file only holds it redacted)",
            hint="pass the live key with --api-key or STRIPE_API_KEY (e.g. from your secret manager)",
        )
    raise ConfigError(
        f"Stripe CLI profile {profile.name!r} in {path} has no live-mode key",
        hint="pass --api-key or set STRIPE_API_KEY to a live key",
    )


def _from_credentials_file(path: Path, item: str) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get(item) if isinstance(data, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def resolve_key(
    flag: str | None,
    *,
    live: bool,
    project_flag: str | None = None,
    config_flag: str | None = None,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> KeyChoice:
    """--api-key, then STRIPE_API_KEY, then STRIPE_SECRET_KEY, then the Stripe CLI's profile."""
    env = os.environ if env is None else env
    if flag and flag.strip():
        return KeyChoice(key=flag.strip(), source="flag", detail="--api-key")
    for name in ("STRIPE_API_KEY", "STRIPE_SECRET_KEY"):
        value = (env.get(name) or "").strip()
        if value:
            return KeyChoice(key=value, source=f"env:{name}", detail=f"environment variable {name}")
    return key_from_stripe_cli(
        live=live, project_flag=project_flag, config_flag=config_flag, env=env, now=now
    )
