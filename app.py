"""Routes and schedules of the SMS gateway. The logic lives in chalicelib/: every route hands
the one request value (chalicelib/surfaces/request.py) to its surface's `handle(request)`."""
from chalice import Chalice, Rate, Response

from chalicelib.core import settings
from chalicelib.domain import devices, pool, sweeps
from chalicelib.surfaces import compat_api, device_api, function_url
from chalicelib.surfaces.request import HttpRequest

# The environment, read and checked once (the models' table names read it first): a bad
# variable fails the function's start with a SettingsError naming it.
settings.current()


class Gateway(Chalice):
    """Chalice, plus the Lambda function URL front door: its payload 2.0 requests are routed
    as REST API events and answered in 2.0 (chalicelib/surfaces/function_url.py)."""

    def __call__(self, event, context):
        if not function_url.is_function_url_event(event):
            return super().__call__(event, context)
        refused = function_url.refusal(event)
        if refused:
            return refused
        rest_event = function_url.to_rest_event(event, self.routes)
        if rest_event is None:
            return function_url.NOT_FOUND
        return function_url.to_function_url_answer(super().__call__(rest_event, context))


app = Gateway(app_name="smsgw")
ANY_BODY = ["*/*"]


def _request() -> HttpRequest:
    """The request as every surface takes it, built once here from chalice's."""
    current = app.current_request
    context = current.context or {}
    return HttpRequest.of(
        current.method, current.path, path_params=current.uri_params,
        query=current.to_original_event().get("multiValueQueryStringParameters"),
        headers=dict(current.headers), body=current.raw_body,
        source_ip=context.get("identity", {}).get("sourceIp"), context=context)


def _answer(surface):
    """Chalice's response for `surface.handle`'s (status, headers, body text)."""
    status, headers, body = surface.handle(_request())
    return Response(body, status_code=status, headers=headers)


@app.route("/myAPI.php", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
           content_types=ANY_BODY)
def my_api():
    return _answer(compat_api)


@app.route("/device/jobs", methods=["GET"])
def device_jobs():
    return _answer(device_api)


@app.route("/device/reports", methods=["POST"], content_types=ANY_BODY)
def device_reports():
    return _answer(device_api)


@app.route("/device/incoming", methods=["POST"], content_types=ANY_BODY)
def device_incoming():
    return _answer(device_api)


@app.route("/device/heartbeat", methods=["POST"], content_types=ANY_BODY)
def device_heartbeat():
    return _answer(device_api)


@app.route("/device/credentials", methods=["POST"], content_types=ANY_BODY)
def device_credentials():
    return _answer(device_api)


@app.route("/device/claims", methods=["POST"], content_types=ANY_BODY)
def device_claims():
    return _answer(device_api)


@app.route("/device/pair", methods=["POST"], content_types=ANY_BODY)
def device_pair():
    from chalicelib.surfaces import pairing_api  # lazy: only pairing phones need it
    return _answer(pairing_api)


# The owner's dashboard (chalicelib/surfaces/dashboard): every page goes through one handler,
# imported on first use so the public API's cold start never loads it.
def _dashboard():
    from chalicelib.surfaces import dashboard
    return _answer(dashboard)


PAGE_METHODS = {"methods": ["GET", "POST"], "content_types": ANY_BODY}


@app.route("/dashboard", **PAGE_METHODS)
def dashboard_home():
    return _dashboard()


@app.route("/dashboard/{page}", **PAGE_METHODS)
def dashboard_page(page):
    return _dashboard()


@app.route("/dashboard/{page}/{item}", **PAGE_METHODS)
def dashboard_item(page, item):
    return _dashboard()


@app.route("/dashboard/{page}/{item}/{action}", **PAGE_METHODS)
def dashboard_action(page, item, action):
    return _dashboard()


# Every method reaches REST v1, which answers one it does not serve with 405 problem+json and
# an Allow header (Chalice's own 405 is not problem+json).
V1_METHODS = {"methods": ["GET", "POST", "PUT", "PATCH", "DELETE"], "content_types": ANY_BODY}


def _v1():
    # imported on first use: the compat API's cold start does not pay for REST v1
    from chalicelib.surfaces import rest_v1
    return _answer(rest_v1)


@app.route("/v1/messages", **V1_METHODS)
def v1_messages():
    return _v1()


@app.route("/v1/messages/{message_id}", **V1_METHODS)
def v1_message(message_id):
    return _v1()


@app.route("/v1/otp", **V1_METHODS)
def v1_otp():
    return _v1()


@app.route("/v1/otp/verify", **V1_METHODS)
def v1_otp_verify():
    return _v1()


@app.route("/v1/devices", **V1_METHODS)
def v1_devices():
    return _v1()


@app.route("/v1/devices/{device_id}", **V1_METHODS)
def v1_device(device_id):
    return _v1()


@app.route("/v1/opt-outs", **V1_METHODS)
def v1_opt_outs():
    return _v1()


@app.route("/v1/opt-outs/{phone_number}", **V1_METHODS)
def v1_opt_out(phone_number):
    return _v1()


@app.route("/v1/webhooks", **V1_METHODS)
def v1_webhooks():
    return _v1()


@app.route("/v1/webhooks/{webhook_id}", **V1_METHODS)
def v1_webhook(webhook_id):
    return _v1()


@app.route("/v1/webhooks/{webhook_id}/test", **V1_METHODS)
def v1_webhook_test(webhook_id):
    return _v1()


@app.route("/v1/webhooks/{webhook_id}/rotate-secret", **V1_METHODS)
def v1_webhook_rotate(webhook_id):
    return _v1()


@app.route("/v1/webhooks/{webhook_id}/deliveries", **V1_METHODS)
def v1_webhook_deliveries(webhook_id):
    return _v1()


@app.route("/v1/webhooks/{webhook_id}/redeliver", **V1_METHODS)
def v1_webhook_redeliver_failed(webhook_id):
    return _v1()


@app.route("/v1/webhooks/{webhook_id}/deliveries/{event_id}", **V1_METHODS)
def v1_webhook_delivery(webhook_id, event_id):
    return _v1()


@app.route("/v1/webhooks/{webhook_id}/deliveries/{event_id}/redeliver", **V1_METHODS)
def v1_webhook_redeliver(webhook_id, event_id):
    return _v1()


@app.route("/v1/stats", **V1_METHODS)
def v1_stats():
    return _v1()


@app.route("/v1/export", **V1_METHODS)
def v1_export():
    return _v1()


@app.route("/v1/openapi.json", **V1_METHODS)
def v1_openapi():
    return _v1()


@app.route("/v1/docs", **V1_METHODS)
def v1_docs():
    return _v1()


# SMSGate's client API (chalicelib/surfaces/smsgate/thirdparty*.py): one handler, imported on
# first use; the surface has its own route table, so these four routes cover every depth.
def _smsgate_client_api():
    from chalicelib.surfaces.smsgate import thirdparty
    return _answer(thirdparty)


SMSGATE_METHODS = {"methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
                   "content_types": ANY_BODY}


@app.route("/3rdparty/v1/{a}", **SMSGATE_METHODS)
def smsgate_client_1(a):
    return _smsgate_client_api()


@app.route("/3rdparty/v1/{a}/{b}", **SMSGATE_METHODS)
def smsgate_client_2(a, b):
    return _smsgate_client_api()


@app.route("/3rdparty/v1/{a}/{b}/{c}", **SMSGATE_METHODS)
def smsgate_client_3(a, b, c):
    return _smsgate_client_api()


@app.route("/3rdparty/v1/{a}/{b}/{c}/{d}", **SMSGATE_METHODS)
def smsgate_client_4(a, b, c, d):
    return _smsgate_client_api()


# SMSGate's Android app as a phone (chalicelib/surfaces/smsgate/mobile.py, docs/android-app.md):
# its private-server device API, imported on first use like REST v1.
def _mobile():
    from chalicelib.surfaces.smsgate import mobile
    return _answer(mobile)


@app.route("/mobile/v1/device", methods=["GET", "POST", "PATCH"], content_types=ANY_BODY)
def mobile_device():
    return _mobile()


@app.route("/mobile/v1/message", methods=["GET", "PATCH"], content_types=ANY_BODY)
def mobile_message():
    return _mobile()


@app.route("/mobile/v1/events", methods=["GET"])
def mobile_events():
    return _mobile()


@app.route("/mobile/v1/settings", methods=["GET"])
def mobile_settings():
    return _mobile()


@app.route("/mobile/v1/webhooks", methods=["GET"])
def mobile_webhooks():
    return _mobile()


@app.route("/mobile/v1/app-webhooks/{device_uid}", methods=["POST"], content_types=ANY_BODY)
def mobile_app_webhook(device_uid):
    return _mobile()


@app.schedule(Rate(1, unit=Rate.MINUTES))
def settle_messages(event):
    """Requeue lost jobs, release dead leases, expire and fail what time settles."""
    return dict(sweeps.settle_due_messages())


@app.schedule(Rate(1, unit=Rate.MINUTES))
def stop_silent_devices(event):
    """Devices silent past the heartbeat window become `stopped`; their pool messages move."""
    return {"stopped": devices.stop_silent(on_stop=pool.failover_device)}


@app.schedule(Rate(1, unit=Rate.MINUTES))
def purge_accounts(event):
    """Purge the accounts their owners deleted, from PURGE_AFTER_SECONDS after (domain/purge.py):
    its own role, the only one that deletes from every table."""
    from chalicelib.domain import purge
    return dict(purge.purge_deleted())


# Webhooks (docs/webhooks.md). Their modules are imported inside the handlers, so the API's
# cold start does not load them. The stream ARN here is a placeholder: the deployment template
# points this function at the messages, incoming and devices streams.
@app.on_dynamodb_record(stream_arn=settings.current().events_stream_placeholder, batch_size=100,
                        starting_position="TRIM_HORIZON", maximum_batching_window_in_seconds=1)
def emit_events(event):
    """Turn message, incoming-SMS and device changes into webhook deliveries, and phones that
    stop or come back into alert mails."""
    from chalicelib.domain import webhooks
    from chalicelib.domain.insight import alerts  # phones offline and back: mails
    records = event.to_dict()["Records"]
    return {"queued": webhooks.fan_out(records), "mailed": alerts.from_device_records(records)}


# The owner's insight (chalicelib/domain/insight): every outcome and incoming SMS counted into
# daily counters, a tumbling window at a time (deploy/ sets the window and the filter).
@app.on_dynamodb_record(stream_arn=settings.current().events_stream_placeholder, batch_size=1000,
                        starting_position="TRIM_HORIZON", maximum_batching_window_in_seconds=300)
def count_outcomes(event):
    """Add a stream window's outcomes to the daily counters, once per window."""
    from chalicelib.domain.insight import stats
    return stats.count_window(event.to_dict())


@app.on_sqs_message(queue=settings.current().webhook_queue_name(), batch_size=10,
                    maximum_concurrency=20)
def deliver_webhooks(event):
    """Send queued webhook deliveries; failed ones go back on the queue with a delay."""
    from chalicelib.domain.webhooks import dispatch as webhook_delivery
    return webhook_delivery.deliver([record.body for record in event])
