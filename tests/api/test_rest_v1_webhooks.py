"""REST v1 webhooks (/v1/webhooks...) through the real Chalice handlers on moto, delivering to a
real HTTP receiver on 127.0.0.1 through the app's stream and queue functions (EventPumps, as
the local gateway runs them). Every answer is checked against the served OpenAPI document by
test_rest_v1's `v1` fixture."""
import json

import pytest

from chalicelib.core import clock
from chalicelib.domain import webhooks
from chalicelib.domain.webhooks import delivery_log
from clients import smsgw_webhook


@pytest.fixture
def receiver(webhook_receiver):
    return webhook_receiver


def hook_path(made, *more):
    return "/".join(["/v1/webhooks", made["webhook_id"], *more])


def test_create_list_get_disable_delete_and_the_secret_is_shown_once(v1, receiver):  # noqa: F811
    status, made, _ = v1("POST", "/v1/webhooks", {"url": receiver.url, "events": [
        "sms.failed", "sms.delivered"], "description": "orders"})
    assert status == 201 and made["secret"].startswith("whsec_")
    assert (made["events"], made["status"]) == (["sms.delivered", "sms.failed"], "enabled")
    assert made["created_at"].endswith("Z")
    [listed] = v1("GET", "/v1/webhooks")[1]["webhooks"]
    one = v1("GET", hook_path(made))[1]
    assert listed == one and "secret" not in one and one["description"] == "orders"
    assert {k: v for k, v in made.items() if k != "secret"} == one
    every = v1("POST", "/v1/webhooks", {"url": receiver.url})[1]
    assert every["events"] == sorted(webhooks.events_.TYPES)  # no events: all of them
    off = v1("PATCH", hook_path(made), {"enabled": False})[1]
    assert off["status"] == "disabled" and off["disabled_reason"] and off["disabled_at"]
    assert v1("PATCH", hook_path(made), {"enabled": True})[1]["status"] == "enabled"
    assert v1("DELETE", hook_path(made))[:2] == (200, {"webhook_id": made["webhook_id"],
                                                          "deleted": True})
    assert v1("GET", hook_path(made))[0] == 404
    assert [w["webhook_id"] for w in v1("GET", "/v1/webhooks")[1]["webhooks"]] == \
        [every["webhook_id"]]


def test_test_event_log_rotation_and_redelivery_reach_a_real_receiver(v1, receiver):  # noqa: F811
    made = v1("POST", "/v1/webhooks", {"url": receiver.url})[1]
    receiver.secrets = [made["secret"]]
    status, tested, _ = v1("POST", hook_path(made, "test"))
    assert status == 202 and tested["event_id"].startswith("evt_")
    event_id = tested["event_id"]
    assert receiver.wait_for(lambda r: r.arrivals[event_id] == 1, 15)
    assert receiver.bad_signatures == 0
    headers, body, _ = receiver.requests[-1]
    assert json.loads(body)["type"] == "webhook.test"
    assert receiver.wait_for(lambda r: v1("GET", hook_path(made, "deliveries", event_id))[0]
                             == 200, 10)
    delivery = v1("GET", hook_path(made, "deliveries", event_id))[1]
    assert delivery["state"] == "delivered" and delivery["body"] == body.decode()
    assert delivery["log"][0]["status_code"] == 200
    page = v1("GET", hook_path(made, "deliveries"))[1]
    assert [d["event_id"] for d in page["deliveries"]] == [event_id]
    assert "body" not in page["deliveries"][0] and page["next_cursor"] is None

    status, rotated, _ = v1("POST", hook_path(made, "rotate-secret"), {"overlap": 600})
    assert status == 200 and rotated["secret"] != made["secret"] and rotated["rotation_ends"]
    receiver.secrets = [rotated["secret"]]
    status, again, _ = v1("POST", hook_path(made, "deliveries", event_id, "redeliver"))
    assert status == 202 and again["queued"] == [event_id]
    assert receiver.wait_for(lambda r: r.arrivals[event_id] == 2, 15)
    headers, body, _ = receiver.requests[-1]
    assert len(headers["X-Smsgw-Signature"].split(",")) == 2  # new and old during the overlap
    for secret in (made["secret"], rotated["secret"]):
        assert smsgw_webhook.verify(body, headers["X-Smsgw-Signature"],
                                    headers["X-Smsgw-Timestamp"], [secret])
    since = clock.fmt(clock.now_ms() - 3600 * 1000).replace(" ", "T") + "Z"
    assert v1("POST", hook_path(made, "redeliver"), {"since": since})[1]["queued"] == []
    # no body: the default overlap (a day); overlap 0 drops the old secret at once
    assert v1("POST", hook_path(made, "rotate-secret"))[1]["rotation_ends"]
    assert v1("POST", hook_path(made, "rotate-secret"), {"overlap": 0})[1]["rotation_ends"] \
        is None


def test_delivery_log_pages_with_a_cursor(v1, account, receiver):  # noqa: F811
    made = v1("POST", "/v1/webhooks", {"url": receiver.url})[1]
    sent = [v1("POST", hook_path(made, "test"))[1]["event_id"] for _ in range(5)]
    assert receiver.wait_for(lambda r: all(r.arrivals[e] for e in sent), 20)
    assert receiver.wait_for(lambda r: len(delivery_log.deliveries(
        account[0].account_id, made["webhook_id"], 10, "delivered")) == 5, 10)
    seen, cursor, pages = [], None, 0
    while True:
        page = v1("GET", hook_path(made, "deliveries") + "?limit=2"
                  + (f"&cursor={cursor}" if cursor else ""))[1]
        assert len(page["deliveries"]) <= 2
        seen += [d["event_id"] for d in page["deliveries"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(sent) and len(seen) == 5 and pages >= 3
    last_at = [d["last_at"] for d in v1("GET", hook_path(made, "deliveries"))[1]["deliveries"]]
    assert last_at == sorted(last_at, reverse=True)
    assert v1("GET", hook_path(made, "deliveries") + "?state=dead")[1]["deliveries"] == []
    first = v1("GET", hook_path(made, "deliveries") + "?limit=2")[1]["next_cursor"]
    other = v1("POST", "/v1/webhooks", {"url": receiver.url})[1]
    for bad in (f"{first}&state=dead", "bm90IGpzb24", "x"):  # other state, not JSON, garbage
        status, problem, _ = v1("GET", hook_path(made, "deliveries") + f"?cursor={bad}")
        assert (status, problem["parameter"]) == (400, "cursor")
    status, problem, _ = v1("GET", hook_path(other, "deliveries") + f"?cursor={first}")
    assert (status, problem["parameter"]) == (400, "cursor")  # another endpoint's cursor


@pytest.mark.parametrize("method,path,body,status,parameter", [
    ("POST", "/v1/webhooks", {"url": "http://169.254.169.254/latest/"}, 422, "url"),
    ("POST", "/v1/webhooks", {"url": "ftp://example.com/x"}, 400, "url"),
    ("POST", "/v1/webhooks", {"url": "https://user:pw@example.com/x"}, 422, "url"),
    ("POST", "/v1/webhooks", {"url": "https://example.com/", "events": ["sms.bogus"]}, 400,
     "events[0]"),
    ("POST", "/v1/webhooks", {"url": "https://example.com/", "events": []}, 400, "events"),
    ("POST", "/v1/webhooks", {"url": "https://example.com/", "secret": "mine"}, 400, "secret"),
    ("POST", "/v1/webhooks", {"url": ""}, 400, "url"),
    ("POST", "/v1/webhooks", {"url": "https://example.com/", "description": "x" * 201}, 400,
     "description"),
    ("GET", "/v1/webhooks/wh_nothex", None, 400, "webhook_id"),
    ("GET", "/v1/webhooks/wh_0000000000000000", None, 404, "webhook_id"),
    ("POST", "/v1/webhooks/wh_0000000000000000/test", None, 404, "webhook_id"),
    ("POST", "/v1/webhooks/wh_0000000000000000/rotate-secret", {"overlap": 7 * 86400 + 1}, 400,
     "overlap"),
    ("PATCH", "/v1/webhooks/wh_0000000000000000", {"enabled": "no"}, 400, "enabled"),
    ("GET", "/v1/webhooks/wh_0000000000000000/deliveries/evt_x", None, 404, "event_id"),
    ("GET", "/v1/webhooks/wh_0000000000000000/deliveries/nope", None, 400, "event_id"),
    ("GET", "/v1/webhooks/wh_0000000000000000/deliveries?limit=101", None, 400, "limit"),
    ("POST", "/v1/webhooks/wh_0000000000000000/redeliver", {"since": "yesterday"}, 400, "since"),
    ("POST", "/v1/webhooks/wh_0000000000000000/redeliver", {}, 400, "since"),
])
def test_bad_input_is_a_problem_and_changes_nothing(v1, account, settings_override, method, path,
                                                     # noqa: F811
                                                    body, status, parameter):
    settings_override(webhook_allow_private=False)
    answer, problem, headers = v1(method, path, body)
    assert (answer, problem.get("parameter")) == (status, parameter), problem
    assert headers["Content-Type"] == "application/problem+json"
    assert webhooks.list_all(account[0].account_id) == []


def test_an_account_has_at_most_the_configured_endpoints(v1, account,
                                                         settings_override):  # noqa: F811
    settings_override(webhook_max_per_account=2, webhook_allow_private=True)
    for _ in range(2):
        assert v1("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/h"})[0] == 201
    status, problem, _ = v1("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/h"})
    assert (status, problem["code"], problem["quota"]) == (403, "quota_exceeded",
                                                           "webhook_endpoints")
    assert len(webhooks.list_all(account[0].account_id)) == 2


def test_concurrent_rotations_are_a_409_never_a_503(account, atomic_moto, settings_override):
    """Real threads: a rotation writes on condition that the secret it read is still there, so
    of two racing rotations one may lose; it is told so (Conflict), never internal_error."""
    import threading

    from chalicelib.core.errors import Conflict
    settings_override(webhook_allow_private=True)
    hook = webhooks.add(account[0].account_id, "http://127.0.0.1:9/h")
    outcomes = []
    for _ in range(8):
        start = threading.Barrier(2)

        def rotate(start=start):
            start.wait()
            try:
                outcomes.append(webhooks.rotate_secret(hook.account_id, hook.webhook_id).secret)
            except Conflict:
                outcomes.append("conflict")
            except Exception as error:  # noqa: BLE001 (what must not happen)
                outcomes.append(repr(error))
        threads = [threading.Thread(target=rotate) for _ in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    assert all(o == "conflict" or o.startswith("whsec_") for o in outcomes), outcomes
    assert webhooks.get(hook.account_id, hook.webhook_id).secret in outcomes
