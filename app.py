"""Routes and schedules of the SMS gateway. The logic lives in chalicelib/."""
import json

from chalice import Chalice, Rate, Response

from chalicelib.domain import devices, pool, sweeps
from chalicelib.surfaces import compat_api, device_api

app = Chalice(app_name="smsgw")
ANY_BODY = ["*/*"]


def _source_ip():
    return app.current_request.context.get("identity", {}).get("sourceIp")


def _query():
    return app.current_request.to_original_event().get("multiValueQueryStringParameters")


def _json_response(status, headers, body):
    return Response(json.dumps(body), status_code=status,
                    headers={"Content-Type": "application/json", **headers})


@app.route("/myAPI.php", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
           content_types=ANY_BODY)
def my_api():
    request = app.current_request
    return _json_response(*compat_api.handle(_query(), dict(request.headers), request.raw_body,
                                             _source_ip(), request.method))


def _device_route(endpoint):
    request = app.current_request
    return _json_response(*device_api.handle(endpoint, dict(request.headers), _query(),
                                             request.raw_body))


@app.route("/device/jobs", methods=["GET"])
def device_jobs():
    return _device_route("jobs")


@app.route("/device/reports", methods=["POST"], content_types=ANY_BODY)
def device_reports():
    return _device_route("reports")


@app.route("/device/incoming", methods=["POST"], content_types=ANY_BODY)
def device_incoming():
    return _device_route("incoming")


@app.route("/device/heartbeat", methods=["POST"], content_types=ANY_BODY)
def device_heartbeat():
    return _device_route("heartbeat")


@app.route("/device/credentials", methods=["POST"], content_types=ANY_BODY)
def device_credentials():
    return _device_route("credentials")


@app.route("/device/claims", methods=["POST"], content_types=ANY_BODY)
def device_claims():
    return _device_route("claims")


@app.schedule(Rate(1, unit=Rate.MINUTES))
def settle_messages(event):
    """Requeue lost jobs, release dead leases, expire and fail what time settles."""
    return dict(sweeps.settle_due_messages())


@app.schedule(Rate(1, unit=Rate.MINUTES))
def stop_silent_devices(event):
    """Devices silent past the heartbeat window become `stopped`; their pool messages move."""
    return {"stopped": devices.stop_silent(on_stop=pool.failover_device)}
