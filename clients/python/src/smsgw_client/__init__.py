"""Typed client for the smsgw REST API v1. Standard library only.

Errors are RFC 9457 problem details, raised as ApiError. 429 and 503 answers are retried after
their Retry-After (the server changed nothing when it answered them).
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, TypedDict

from smsgw_client.webhooks import InvalidSignature, verified_event, verify

__all__ = ["Client", "ApiError", "Accepted", "Message", "Device", "Webhook", "WebhookDelivery",
           "MAX_RECIPIENTS", "InvalidSignature", "verify", "verified_event"]
MAX_RECIPIENTS = 1000
RETRIED = (429, 503)


class Accepted(TypedDict, total=False):
    id: int | None
    phone_number: str
    status: str  # "pending", or "rejected" (see error)
    queued: bool
    send_at: str | None
    expected_at: str  # when the phone can take it (pacing, send_at); never earlier
    expected_in: int  # seconds from the answer to expected_at
    device_id: int | None
    sim_slot: int | None
    replayed: bool
    error: dict[str, Any]


class Message(TypedDict, total=False):
    id: int
    direction: str
    phone_number: str
    status: str
    message: str
    device_id: int
    device_uid: str
    sim_slot: int | None
    segments: int | None
    created_at: str
    send_at: str | None
    processed_at: str | None
    delivered_at: str | None
    expires_at: str | None
    reason: str | None


class Device(TypedDict, total=False):
    device_id: int
    device_uid: str
    name: str
    status: str
    last_seen: str | None
    sim_count: int | None
    battery: int | None
    signal: int | None


class SimState(TypedDict, total=False):
    sim_slot: int
    next_free_at: str | None
    paused: bool
    paused_until: str | None
    pause_reason: str | None


class DeviceDetail(Device, total=False):
    queue_depth: int | None
    pace_per_hour: int | None  # SMS parts per hour per SIM; None: no SIM rate
    pace_default: bool
    window_parts: int | None  # parts per window for the phone; None: no window
    window_minutes: int
    window_used: int
    window_default: bool
    paused: bool
    sims: list[SimState]


_DEFAULT = object()


class Webhook(TypedDict, total=False):
    webhook_id: str
    url: str
    events: list[str]
    description: str
    status: str  # enabled | failing | disabled
    disabled_reason: str | None
    disabled_at: str | None
    failing_since: str | None
    failures: int
    last_error: str | None
    last_success_at: str | None
    created_at: str
    rotation_ends: str | None
    secret: str  # only from create_webhook and rotate_webhook_secret


class WebhookAttempt(TypedDict, total=False):
    at: str
    status_code: int | None
    latency_ms: int
    error: str | None


class WebhookDelivery(TypedDict, total=False):
    event_id: str
    type: str
    state: str  # retrying | delivered | dead | skipped
    attempts: int
    created_at: str
    last_at: str
    next_at: str | None
    log: list[WebhookAttempt]
    body: str  # only from webhook_delivery


class ApiError(Exception):
    """An error answer: `problem` is the whole RFC 9457 document."""

    def __init__(self, status: int, problem: dict[str, Any]):
        self.status = status
        self.problem = problem
        self.code: str = problem.get("code", "error")
        self.detail: str = problem.get("detail", "")
        self.parameter: str | None = problem.get("parameter")
        self.retry_after: int | None = problem.get("retry_after")
        super().__init__(f"{status} {self.code}: {self.detail}")


def _time(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("send_at must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017 (3.10)


class Client:
    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0,
                 max_retries: int = 3, max_retry_wait: float = 60.0, sleep=time.sleep):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep

    # -- transport --------------------------------------------------------------------------
    def request(self, method: str, path: str, body: dict | None = None,
                query: dict | None = None, keep_null: bool = False) -> Any:
        """One API call (retried on 429/503 after Retry-After); the decoded JSON answer. Body
        fields that are None are left out, unless `keep_null` (a PATCH's null: the default)."""
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(
            {k: v for k, v in body.items() if keep_null or v is not None}).encode()
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read() or b"null")
            except urllib.error.HTTPError as answer:
                raw = answer.read()
                try:
                    problem = json.loads(raw)
                except ValueError:
                    problem = {"code": "http_error", "detail": raw[:200].decode("latin-1")}
                wait = answer.headers.get("Retry-After")
                if answer.code in RETRIED and attempt < self.max_retries and wait \
                        and wait.isdigit() and int(wait) <= self.max_retry_wait:
                    self._sleep(int(wait))
                    continue
                raise ApiError(answer.code, problem if isinstance(problem, dict) else {})
        raise AssertionError("unreachable")

    # -- messages ---------------------------------------------------------------------------
    def send(self, recipients: list[str] | str, message: str, *, device_id: int | None = None,
             sim_slot: int | None = None, send_at: datetime | str | None = None,
             valid_for: int | None = None, priority: str | None = None,
             idempotency_key: str | None = None,
             passphrase: str | None = None) -> list[Accepted]:
        """Send `message` to each recipient (at most 1,000 per call): one entry per recipient.
        `passphrase`: end-to-end encrypt the text and every number here (smsgw_client.e2e);
        only phones whose agent holds the same passphrase can send it."""
        if isinstance(recipients, str):
            recipients = [recipients]
        extra = {}
        if passphrase:
            from smsgw_client.e2e import seal
            recipients = [seal(number, passphrase) for number in recipients]
            message, extra = seal(message, passphrase), {"is_encrypted": True}
        answer = self.request("POST", "/v1/messages", {**extra,
            "recipients": list(recipients), "message": message, "device_id": device_id,
            "sim_slot": sim_slot, "send_at": _time(send_at), "valid_for": valid_for,
            "priority": priority,
            "idempotency_key": idempotency_key})
        return answer["messages"]

    def get(self, message_id: int) -> Message:
        return self.request("GET", f"/v1/messages/{int(message_id)}")

    def cancel(self, message_id: int) -> Message:
        """Cancel a message no phone has taken; ApiError 409 (problem current_status) if taken."""
        return self.request("DELETE", f"/v1/messages/{int(message_id)}")

    def messages(self, *, direction: str | None = None, status: str | None = None,
                 device_id: int | None = None, phone_number: str | None = None,
                 since: datetime | str | None = None, until: datetime | str | None = None,
                 page_size: int = 100) -> Iterator[Message]:
        """Every matching message, newest first, following the cursor page by page."""
        cursor = None
        while True:
            page = self.request("GET", "/v1/messages", query={
                "direction": direction, "status": status, "device_id": device_id,
                "phone_number": phone_number, "since": _time(since), "until": _time(until),
                "limit": page_size, "cursor": cursor})
            yield from page["messages"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    # -- OTP and devices --------------------------------------------------------------------
    def send_otp(self, phone_number: str, *, device_id: int | None = None,
                 length: int | None = None, expiry: int | None = None,
                 message: str | None = None) -> dict[str, Any]:
        return self.request("POST", "/v1/otp", {
            "phone_number": phone_number, "device_id": device_id, "length": length,
            "expiry": expiry, "message": message})

    def verify_otp(self, phone_number: str, otp_code: str) -> bool:
        """True once for the right live code; False for a wrong, used or expired one."""
        try:
            return self.request("POST", "/v1/otp/verify", {
                "phone_number": phone_number, "otp_code": otp_code})["verified"]
        except ApiError as error:
            if error.code == "invalid_otp":
                return False
            raise

    def devices(self) -> list[Device]:
        return self.request("GET", "/v1/devices")["devices"]

    def device(self, device_id: int) -> DeviceDetail:
        return self.request("GET", f"/v1/devices/{int(device_id)}")

    def set_pacing(self, device_id: int, *, pace_per_hour: Any = _DEFAULT,
                   window_parts: Any = _DEFAULT) -> DeviceDetail:
        """Set a phone's SIM rate (parts per hour per SIM) and/or its window (parts per 30
        minutes; 0: none); None puts the gateway's default back, a left-out one is unchanged."""
        body = {name: value for name, value in (("pace_per_hour", pace_per_hour),
                                                ("window_parts", window_parts))
                if value is not _DEFAULT}
        return self.request("PATCH", f"/v1/devices/{int(device_id)}", body, keep_null=True)

    # -- webhooks (verify what they send with smsgw_client.verify / verified_event) ---------
    def webhooks(self) -> list[Webhook]:
        return self.request("GET", "/v1/webhooks")["webhooks"]

    def create_webhook(self, url: str, *, events: list[str] | None = None,
                       description: str | None = None) -> Webhook:
        """A new endpoint; its `secret` is in this answer only: keep it."""
        return self.request("POST", "/v1/webhooks", {"url": url, "events": events,
                                                      "description": description})

    def webhook(self, webhook_id: str) -> Webhook:
        return self.request("GET", _hook(webhook_id))

    def set_webhook_enabled(self, webhook_id: str, enabled: bool) -> Webhook:
        return self.request("PATCH", _hook(webhook_id), {"enabled": enabled})

    def delete_webhook(self, webhook_id: str) -> None:
        self.request("DELETE", _hook(webhook_id))

    def test_webhook(self, webhook_id: str) -> str:
        """Queue a webhook.test event to the endpoint; its event id (see webhook_delivery)."""
        return self.request("POST", _hook(webhook_id, "test"))["event_id"]

    def rotate_webhook_secret(self, webhook_id: str, *, overlap: int | None = None) -> Webhook:
        """A new secret (in this answer only); the old one also signs for `overlap` s."""
        return self.request("POST", _hook(webhook_id, "rotate-secret"),
                            {} if overlap is None else {"overlap": overlap})

    def webhook_deliveries(self, webhook_id: str, *, state: str | None = None,
                           page_size: int = 100) -> Iterator[WebhookDelivery]:
        """The delivery log, newest attempt first, following the cursor page by page."""
        cursor = None
        while True:
            page = self.request("GET", _hook(webhook_id, "deliveries"), query={
                "state": state, "limit": page_size, "cursor": cursor})
            yield from page["deliveries"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    def webhook_delivery(self, webhook_id: str, event_id: str) -> WebhookDelivery:
        """One event's delivery (ApiError 404 until its first attempt is logged)."""
        return self.request("GET", _hook(webhook_id, "deliveries", event_id))

    def redeliver(self, webhook_id: str, event_id: str) -> list[str]:
        return self.request("POST", _hook(webhook_id, "deliveries", event_id, "redeliver")
                            )["queued"]

    def redeliver_failed(self, webhook_id: str, since: datetime | str) -> list[str]:
        """Queue again every delivery that ended dead or skipped since `since`."""
        return self.request("POST", _hook(webhook_id, "redeliver"),
                            {"since": _time(since)})["queued"]


def _hook(webhook_id: str, *more: str) -> str:
    return "/v1/webhooks/" + "/".join(urllib.parse.quote(part, safe="")
                                      for part in (webhook_id, *more))
