"""Which webhook receivers a local gateway may call, from where it listens (issue 30, item 6):
loopback and private addresses only on a loopback-only gateway, or when its owner opts in
(--allow-private-webhooks). Before, a gateway on 0.0.0.0 forwarded webhooks to 127.0.0.1, the
AWS emulator's address, for any account holder on the LAN. The e2e twin is
tests/e2e/test_local_lan_webhooks.py (tests listen on loopback only)."""
import pytest

from chalicelib.core import settings
from chalicelib.core.errors import BadRequest


@pytest.mark.parametrize("host, allowed", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.20", False),
    ("10.0.0.5", False), ("my-laptop.lan", False)])
def test_private_receivers_are_allowed_only_on_a_loopback_gateway(host, allowed):
    from local_gateway import private_webhooks_allowed
    assert private_webhooks_allowed(host) is allowed
    assert private_webhooks_allowed(host, opted_in=True) is True


def test_a_gateway_on_the_network_refuses_them_when_added(account, monkeypatch, settings_override):
    from chalicelib.domain import webhooks
    from local_gateway import LocalGateway
    settings_override(webhook_allow_private=True)  # the local stage's default
    settings_override(webhook_allow_http=True)
    monkeypatch.setenv("SMSGW_WEBHOOK_ALLOW_PRIVATE", "")  # restored after the test
    webhooks.ensure_queue()
    gateway = LocalGateway(port=8000, host="0.0.0.0")  # nothing listens: policy only
    gateway._webhook_policy()
    assert settings.current().webhook_allow_private is False and gateway.private_webhooks is False
    for url in ("http://127.0.0.1:4566/", "http://192.168.1.1/hook", "http://[fd00::1]/h"):
        with pytest.raises(BadRequest) as refused:
            webhooks.add(account[0].account_id, url)
        assert refused.value.parameter == "url" and "Refused url" in str(refused.value)
    assert webhooks.add(account[0].account_id, "http://93.184.216.34/hook")  # public: fine


def test_the_owner_can_opt_in(monkeypatch, settings_override):
    from local_gateway import LocalGateway
    settings_override(webhook_allow_private=True)
    monkeypatch.setenv("SMSGW_WEBHOOK_ALLOW_PRIVATE", "")
    gateway = LocalGateway(port=8000, host="192.168.1.20", allow_private_webhooks=True)
    gateway._webhook_policy()
    assert settings.current().webhook_allow_private is True and gateway.private_webhooks is True
    loopback = LocalGateway(port=8000, host="127.0.0.1")
    loopback._webhook_policy()
    assert settings.current().webhook_allow_private is True and loopback.private_webhooks is True
