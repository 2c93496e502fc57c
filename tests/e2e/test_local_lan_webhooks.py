"""Webhooks on a local gateway that listens on the network (issue 30, item 6): receivers on
loopback and private addresses are refused, with a clear error when added and before every
attempt (an endpoint added earlier, or a name whose DNS answer changed, is not called). On a
loopback-only gateway they stay allowed.

Tests may listen on loopback only, so the network's policy is what a gateway started with
`--host 0.0.0.0` applies (tests/unit/test_local_webhook_policy.py checks that wiring);
here a real gateway process runs it over HTTP, with a real receiver that must hear nothing."""
import time

import requests
from test_alerts_e2e import wait_for
from test_local_restarts import deliver_one

from bench.webhook_receiver import Receiver
from tests.localgw_helpers import GatewayProcess


def add(info, url):
    return requests.post(f"{info['url']}/v1/webhooks", json={"url": url}, timeout=10,
                         headers={"Authorization": f"Bearer {info['api_key']}"})


def attempts(info, webhook_id):
    answer = requests.get(f"{info['url']}/v1/webhooks/{webhook_id}/deliveries", timeout=10,
                          headers={"Authorization": f"Bearer {info['api_key']}"})
    return [a for d in answer.json()["deliveries"] for a in d["log"]]


def test_a_network_gateway_refuses_local_receivers_when_added_and_when_called(tmp_path):
    receiver = Receiver()
    data = tmp_path / "data"
    try:
        local = GatewayProcess("--no-agent", data=data, user=True)
        try:
            assert local.info["private_webhooks"] is True  # loopback only: allowed
            made = add(local.info, receiver.url)
            assert made.status_code == 201, made.text
        finally:
            local.stop()
        lan = GatewayProcess("--no-agent", data=data, user=True,
                             env={"SMSGW_WEBHOOK_ALLOW_PRIVATE": "0"})  # as on 0.0.0.0
        try:
            info = lan.info
            assert info["private_webhooks"] is False
            for url in (receiver.url, "http://10.1.2.3/hook", "http://[::1]:9/hook",
                        "http://localhost:9/hook"):
                answer = add(info, url)
                # REST v1 answers an invalid parameter 422 (the compatibility API: 400)
                assert answer.status_code == 422, (url, answer.text)
                problem = answer.json()
                assert problem.get("parameter") == "url" and "Refused url" in answer.text, \
                    problem
            deliver_one(info, "to a receiver the gateway may no longer call")
            webhook_id = made.json()["webhook_id"]
            assert wait_for(lambda: any("refused" in (a["error"] or "")
                                        for a in attempts(info, webhook_id)))
            time.sleep(1)
            assert receiver.requests == []
        finally:
            lan.stop()
    finally:
        receiver.close()
