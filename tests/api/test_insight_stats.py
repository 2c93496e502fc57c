"""GET /v1/stats: the counters as JSON, as the OpenAPI document says, for one Query."""
import json

import jsonschema

from chalicelib.domain import jobs


def get(client, key, path="/v1/stats"):
    response = client.http.get(path, headers={"authorization": f"Bearer {key}"})
    return response.status_code, json.loads(response.body)


def test_stats_match_the_messages_sent(client, account, aws_calls):
    from localgw import events as local_events
    acct, key, device, _ = account
    sent = client.http.post("/v1/messages", headers={"authorization": f"Bearer {key}",
                                                     "content-type": "application/json"},
                            body=json.dumps({"recipients": ["+14155550100", "+14155550101"],
                                             "message": "Hi", "device_id": 1}))
    ids = [m["id"] for m in json.loads(sent.body)["messages"]]
    assert len(jobs.lease_from_queue(device, 0, 10)) == 2
    jobs.report(device, ids[0], "sent")
    jobs.report(device, ids[0], "delivered")
    jobs.report(device, ids[1], "failed", "No service")
    local_events.EventPumps().pump_streams()

    aws_calls.clear()
    status, body = get(client, key)
    assert status == 200
    document = json.loads(client.http.get("/v1/openapi.json").body)
    jsonschema.validate(body, document["paths"]["/v1/stats"]["get"]["responses"]["200"][
        "content"]["application/json"]["schema"])
    assert len(body["days"]) == 30
    assert body["totals"] == {"delivered": 1, "sent": 1, "failed": 1, "expired": 0,
                              "cancelled": 0, "received": 0}
    [phone] = body["phones"]
    assert phone["device_id"] == 1 and phone["delivery_rate"] == 1.0
    assert phone["failures_by_reason"] == {"No service": 1}
    # the key's lookup (cached when warm) and one Query, whatever the volume
    assert [op for _, op in aws_calls if op != "GetItem"] == ["Query"]
    assert get(client, key, "/v1/stats?days=7")[1]["days"][-1] == body["days"][-1]


def test_bad_days_is_a_problem(client, account):
    status, body = get(client, account[1], "/v1/stats?days=31")
    assert status == 400 and body["parameter"] == "days"
    status, body = get(client, account[1], "/v1/stats?day=3")
    assert status == 400 and body["parameter"] == "day"
