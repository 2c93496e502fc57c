"""Routes and schedules of the SMS gateway. The logic lives in chalicelib/."""
import json

from chalice import Chalice, Rate, Response

from chalicelib import compat_api, device_api, devices, sweeps

app = Chalice(app_name="smsgw")
ANY_BODY = ["*/*"]


def _source_ip():
    return app.current_request.context.get("identity", {}).get("sourceIp")


@app.route("/myAPI.php", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
           content_types=ANY_BODY)
def my_api():
    request = app.current_request
    status, headers, envelope = compat_api.handle(
        request.to_original_event().get("multiValueQueryStringParameters"),
        dict(request.headers), request.raw_body, _source_ip(), request.method)
    return Response(json.dumps(envelope), status_code=status,
                    headers={"Content-Type": "application/json", **headers})


def _device_route(endpoint):
    request = app.current_request
    status, headers, body = device_api.handle(
        endpoint, dict(request.headers),
        request.to_original_event().get("multiValueQueryStringParameters"), request.raw_body)
    return Response(json.dumps(body), status_code=status,
                    headers={"Content-Type": "application/json", **headers})


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


@app.schedule(Rate(1, unit=Rate.MINUTES))
def settle_messages(event):
    """Requeue lost jobs, release dead leases, expire and fail what time settles."""
    return dict(sweeps.settle_due_messages())


@app.schedule(Rate(1, unit=Rate.MINUTES))
def stop_silent_devices(event):
    """Devices silent past the heartbeat window become `stopped`."""
    return {"stopped": devices.stop_silent()}
