"""Gateway guards: malformed list responses exit 4 (not 70); settings never show the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from stripectl.gateway.client import GatewaySettings
from tests.drift_helpers import cli
from tests.fakes.base import Response, serve
from tests.fakes.subscriptions import FakeSubscriptions


@pytest.mark.parametrize("command", ["sync", "reconcile"])
@pytest.mark.parametrize("body", [{"object": "list", "data": None}, {"object": "list"}])
def test_malformed_subscription_list_exits_4_with_one_line(
    command: str, body: dict[str, object], tmp_path: Path
) -> None:
    fake = FakeSubscriptions()
    fake.fail_next.append(Response(200, body))
    with serve(fake) as url:
        result = cli(url, tmp_path / "m.db", command)
    assert result.exit_code == 4, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: unexpected list response from Stripe: /v1/subscriptions "
                     "without a data list"]
    assert "bug" not in result.stderr


@pytest.mark.parametrize("command", ["sync", "reconcile"])
def test_a_listed_item_that_is_not_an_object_exits_4(command: str, tmp_path: Path) -> None:
    fake = FakeSubscriptions()
    fake.fail_next.append(Response(200, {"object": "list", "data": [1], "has_more": False}))
    with serve(fake) as url:
        result = cli(url, tmp_path / "m.db", command)
    assert result.exit_code == 4, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: unexpected list response from Stripe: /v1/subscriptions with an item that "
        "is not an object"]


def test_gateway_settings_repr_hides_the_api_key() -> None:
    key = "sk_test_stripectl_fake_0000"
    settings = GatewaySettings(api_key=key, api_base="http://127.0.0.1:1")
    assert "stripectl_fake" not in repr(settings) and "sk_test" not in repr(settings)
    assert "http://127.0.0.1:1" in repr(settings)  # the rest still shows
    assert settings.api_key == key
