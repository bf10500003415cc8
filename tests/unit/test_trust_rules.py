"""Whose address a request is counted against, and how that trust is configured."""

import pytest

from sweetdream.accounts import devices
from sweetdream.platform.web import client_address
from sweetdream.settings import Settings, SettingsError

PEER = "10.0.3.17"  # the load balancer's address inside the VPC, as the web task sees it


@pytest.mark.parametrize(
    ("forwarded_for", "hops", "expected"),
    [
        ([], 0, PEER),
        (["203.0.113.9"], 0, PEER),  # not told to trust a proxy: the header is ignored
        ([], 1, PEER),
        (["203.0.113.9"], 1, "203.0.113.9"),
        (["1.2.3.4, 203.0.113.9"], 1, "203.0.113.9"),  # a claimed first entry is never the client
        (["6.6.6.6, 7.7.7.7,203.0.113.9"], 1, "203.0.113.9"),
        (["1.2.3.4", "203.0.113.9"], 1, "203.0.113.9"),  # two header lines read as one list
        (["1.2.3.4, 198.51.100.1, 10.0.0.5"], 2, "198.51.100.1"),  # CDN then ALB
        (["198.51.100.1"], 2, PEER),  # fewer entries than trusted proxies: not through them
        (["1.2.3.4, not-an-address"], 1, PEER),  # what a trusted proxy wrote must be an address
        (["2001:db8::1"], 1, "2001:db8::1"),
        ([" 203.0.113.9 "], 1, "203.0.113.9"),
    ],
)
def test_client_address_is_what_the_trusted_proxy_saw(forwarded_for, hops, expected):
    assert client_address(forwarded_for, PEER, hops) == expected


def test_client_address_without_a_peer():
    assert client_address([], None, 0) == "unknown"


@pytest.mark.parametrize(
    ("env", "hops"),
    [
        ({}, 0),
        ({"TRUST_PROXY_HOPS": "1"}, 1),
        ({"TRUST_PROXY_HOPS": "2"}, 2),
        ({"TRUST_PROXY": "true"}, 1),  # the older switch means one proxy
        ({"TRUST_PROXY": "false"}, 0),
        ({"TRUST_PROXY": "true", "TRUST_PROXY_HOPS": "0"}, 0),  # the explicit count wins
    ],
)
def test_trusted_proxy_hops_setting(monkeypatch, env, hops):
    for name in ("TRUST_PROXY", "TRUST_PROXY_HOPS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env().trust_proxy_hops == hops


@pytest.mark.parametrize("value", ["-1", "many", "11"])
def test_trusted_proxy_hops_must_be_a_small_count(monkeypatch, value):
    monkeypatch.setenv("TRUST_PROXY_HOPS", value)
    with pytest.raises(SettingsError, match="TRUST_PROXY_HOPS"):
        Settings.from_env()


SECRET = "a-test-secret-that-is-long-enough-0123456789"


def test_a_known_device_token_is_for_one_email_and_this_secret_only():
    token = devices.token_for(SECRET, "lan@example.com")
    assert devices.is_known(SECRET, token, "lan@example.com")
    assert not devices.is_known(SECRET, token, "minh@example.com")
    assert not devices.is_known("another-secret-also-long-enough-0123456789", token, "lan@example.com")
    assert "lan" not in token  # it names no one
    nonce, signature = token.split(".")
    assert not devices.is_known(SECRET, f"{nonce}x.{signature}", "lan@example.com")
    for bad in (None, "", ".", "nonce.", f".{signature}", "garbage"):
        assert not devices.is_known(SECRET, bad, "lan@example.com")


def test_every_device_gets_its_own_token():
    assert devices.token_for(SECRET, "lan@example.com") != devices.token_for(SECRET, "lan@example.com")
