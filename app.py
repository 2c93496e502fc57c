"""Routes and schedules of the SMS gateway. The logic lives in chalicelib/."""
import json

from chalice import Chalice, Rate, Response

from chalicelib import compat_api, sweeps

app = Chalice(app_name="smsgw")
ANY_BODY = ["*/*"]


def _source_ip():
    return app.current_request.context.get("identity", {}).get("sourceIp")


@app.route("/myAPI.php", methods=["GET", "POST"], content_types=ANY_BODY)
def my_api():
    request = app.current_request
    status, headers, envelope = compat_api.handle(
        request.to_original_event().get("multiValueQueryStringParameters"),
        dict(request.headers), request.raw_body, _source_ip())
    return Response(json.dumps(envelope), status_code=status,
                    headers={"Content-Type": "application/json", **headers})


@app.schedule(Rate(1, unit=Rate.MINUTES))
def settle_messages(event):
    """Requeue lost jobs, release dead leases, expire and fail what time settles."""
    return dict(sweeps.settle_due_messages())
