"""GETs on urllib3 directly (stripectl/gateway/transport.py), through the SDK.

What must hold of the SDK's own transport: compressed answers asked for and
decoded, a dropped connection retried by the SDK's network retries (and
mapped to exit 5 without them), and a proxy named in the environment obeyed
(such GETs stay on requests, which applies the environment's proxy rules).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stripectl.errors import NetworkError
from stripectl.gateway.client import GatewaySettings, connect
from stripectl.gateway.list_page import list_page
from tests import factories as f
from tests.fakes.base import FakeStripe, Request, Response, serve

KEY = "sk_test_stripectl_fake_0000"


class Pages(FakeStripe):
    def __init__(self, *, drop_first: int = 0) -> None:
        super().__init__()
        self.drop_first = drop_first
        self.subs = [f.subscription(id=f"sub_{n:03d}", created=f.T0 + n) for n in range(3)]

    def route(self, req: Request) -> Response:
        if self.drop_first > 0:
            self.drop_first -= 1
            return Response(drop_connection=True)
        body = {"object": "list", "url": req.path, "has_more": False, "data": self.subs[::-1]}
        return Response(body=body, compress=True)


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    yield


def page(url: str, retries: int = 0) -> tuple[list[dict[str, object]], bool]:
    gw = connect(GatewaySettings(api_key=KEY, api_base=url, max_network_retries=retries))
    return list_page(gw, "/v1/subscriptions", {"status": "all", "limit": 100})


def test_pages_are_asked_compressed_and_decoded(no_proxy_env: None) -> None:
    app = Pages()
    with serve(app) as url:
        data, more = page(url)
    assert [s["id"] for s in data] == ["sub_002", "sub_001", "sub_000"] and more is False
    (req,) = app.requests
    assert "gzip" in req.headers["accept-encoding"]
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["stripe-version"]  # the SDK's headers, unchanged


def test_a_dropped_connection_is_retried_by_the_sdk(no_proxy_env: None) -> None:
    app = Pages(drop_first=1)
    with serve(app) as url:
        data, _ = page(url, retries=1)
    assert len(data) == 3 and len(app.requests) == 2


def test_a_dropped_connection_without_retries_is_a_network_error(no_proxy_env: None) -> None:
    app = Pages(drop_first=1)
    with serve(app) as url, pytest.raises(NetworkError) as caught:
        page(url, retries=0)
    assert str(caught.value).startswith(f"cannot reach Stripe at {url}: ")
    assert len(app.requests) == 1


def test_a_proxy_in_the_environment_is_obeyed(
    no_proxy_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy (a fake that answers itself) gets the GET; the API host does not."""
    api, proxy = Pages(), Pages()
    with serve(api) as api_url, serve(proxy) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        data, _ = page(api_url)
    assert len(data) == 3
    assert len(proxy.requests) == 1 and api.requests == []
