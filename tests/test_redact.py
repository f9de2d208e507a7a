from __future__ import annotations

from stripectl.redact import mask, redact


def test_mask_keeps_prefix_and_last_four() -> None:
    assert mask("sk_test_stripectl_fake_0000abcd") == "sk_test_...abcd"
    assert mask("whsec_stripectl_example_00001234") == "whsec_...1234"
    assert mask(None) == "<none>"


def test_redact_free_text() -> None:
    text = (
        "key sk_live_stripectlfakeLIVE9999 secret whsec_stripectl_example_0000000000000000 "
        "client pi_3ABC_secret_XYZsecretvalue and rk_test_restrictedfake7777"
    )
    out = redact(text)
    for secret in (
        "stripectlfakeLIVE",
        "example_0000000000000000",
        "XYZsecretvalue",
        "restrictedfake",
    ):
        assert secret not in out
    assert "sk_live_...9999" in out and "whsec_...0000" in out and "pi_3ABC_secret_..." in out


def test_checkout_client_secret_and_url_encoded_keys() -> None:
    out = redact("cs_test_a1B2c3_secret_XyZ9secret and q=%3Dsk_test_abcdEFGH12345678")
    assert "XyZ9secret" not in out and "abcdEFGH12345678" not in out
    assert "cs_test_a1B2c3_secret_..." in out and "sk_test_...5678" in out
