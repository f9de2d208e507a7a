"""Opening Stripe for a given mirror: the key-mode guard every command shares."""

from __future__ import annotations

from stripectl.gateway.client import Gateway, GatewaySettings, check_settings, connect, parse_livemode
from stripectl.store import Store


def open_gateway(store: Store, settings: GatewaySettings) -> Gateway:
    """A gateway whose key mode matches the mirror's data (meta `livemode`):
    a test key never acts on a live-mode mirror, nor a live key on a test one."""
    return connect(settings, mirror_livemode=parse_livemode(store.meta_get("livemode")))


def check_stripe_settings(settings: GatewaySettings) -> list[str]:
    """Refuse a missing / live / publishable key or a bad base URL before the
    mirror is opened (so a config error creates no file); warnings to show."""
    return check_settings(settings)
