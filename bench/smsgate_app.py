"""Plays SMSGate's Android app in private-server mode against a gateway, over real sockets, as
its source builds requests (capcom6/android-sms-gateway; files cited in docs/android-app.md):

- GatewayApi.kt: ktor client, `User-Agent: me.capcom.smsgateway/<version>`, JSON bodies
  without null fields (Gson's default), `Authorization: Bearer <token>` / `Code <code>`;
  registration as GatewayService.registerDevice (PATCH /device first, POST /device on a 401).
- SSEManager.kt: GET /events on a plain OkHttp client (its own User-Agent); on open the app
  pulls GET /message (SSEForegroundService: PullMessagesWorker on connect), every
  MessageEnqueued event pulls again; after a close it reconnects in 5 s, after failures in 5 s
  (attempts 1-5), 30 s (6-10), 60 s (more); a successful open resets the count.
- GatewayService.processMessage: a message id it already has is not sent again (its state is
  re-sent instead); each state change is a PATCH /message of one item (SendStateWorker). A
  message handed as Cancelling is cancelled if it still waits in the app's queue
  (MessagesService.cancelMessage: only while Pending), reported Cancelled if the app never had
  it, and left alone if the app already started it. Numbers are reported as stored (an
  encrypted message's ciphertext).
- PayloadSingingPlugin.kt: webhooks signed hex HMAC-SHA256(key, body + X-Timestamp).

Sending an SMS is simulated (a ledger entry). `kill()` stops it dead; `start()` again is the
app restarted with its own database (what it had taken and not finished, it finishes).
"""
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter

import requests

VERSION = "1.68.0"
OKHTTP_AGENT = "okhttp/4.12.0"
RECONNECT_SECONDS = (5.0, 30.0, 60.0)  # SSEManager.scheduleReconnect


def _compact(value):
    """Gson without serializeNulls: null fields are left out."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def parse_sse(text: str) -> list[tuple[str | None, str]]:
    """(event type, data) of each event in a text/event-stream body."""
    events, kind, data = [], None, []
    for line in text.split("\n"):
        if not line:
            if data:
                events.append((kind, "\n".join(data)))
            kind, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    return events


class SmsgateApp:
    def __init__(self, server_url: str, private_token: str | None = None, code: str | None = None,
                 version: str = VERSION, sims: int = 2, reconnect_scale: float = 1.0,
                 verify=True, name: str = "Google/sdk_gphone64_x86_64"):
        self.url = server_url.rstrip("/")
        self.private_token, self.code = private_token, code
        self.version, self.sims, self.scale, self.name = version, sims, reconnect_scale, name
        self.api = requests.Session()
        self.api.headers["User-Agent"] = f"me.capcom.smsgateway/{version}"
        self.sse = requests.Session()
        self.sse.headers["User-Agent"] = OKHTTP_AGENT
        self.verify = verify  # per request: requests lets REQUESTS_CA_BUNDLE beat Session.verify
        self.registration = None
        self.webhooks, self.signing_key = [], None
        self.local = {}  # the app's database: message id -> its last state
        self.ledger = []  # every SMS "sent": {message_id, phone, sim_slot, at}
        self.pulled_at = {}  # message id -> when GET /message handed it over
        self.requests = Counter()
        self.fail = {}  # message text -> the error to fail it with
        self.hold = set()  # message texts that wait in the app's queue (its send delays)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = None
        self.attempts = 0
        self.errors = []

    # --- requests ------------------------------------------------------------------------
    def _request(self, method, path, auth=None, body=None, params=None, session=None):
        if self.stop_event.is_set():
            raise Killed()
        headers = {"Authorization": auth} if auth else {}
        self.requests[(method, path)] += 1
        return (session or self.api).request(
            method, self.url + path, headers=headers, params=params, timeout=(5, 60),
            verify=self.verify,
            json=_compact(body) if body is not None else None)

    def _token(self) -> str:
        return f"Bearer {self.registration['token']}"

    def sim_cards(self) -> list:
        return [{"slotIndex": i, "simNumber": i + 1, "phoneNumber": "******5678",
                 "carrierName": "****lar", "iccid": None} for i in range(self.sims)]

    def register(self) -> dict:
        """GatewayService.registerDevice: PATCH first if registered, POST /device on a 401."""
        if self.registration:
            answer = self._request("PATCH", "/device", self._token(), {
                "id": self.registration["id"], "pushToken": None, "simCards": self.sim_cards()})
            if answer.status_code != 401:
                answer.raise_for_status()
                return self.registration
        auth = f"Code {self.code}" if self.code else f"Bearer {self.private_token}"
        answer = self._request("POST", "/device", auth, {
            "name": self.name, "pushToken": None, "simCards": self.sim_cards()})
        if answer.status_code != 201:
            raise RegistrationFailed(answer.status_code, answer.text)
        self.registration = answer.json()
        self.update_webhooks_and_settings()
        return self.registration

    def update_webhooks_and_settings(self):
        """WebhooksUpdateWorker and SettingsUpdateWorker (at start, then daily)."""
        answer = self._request("GET", "/webhooks", self._token())
        answer.raise_for_status()
        self.webhooks = answer.json()
        answer = self._request("GET", "/settings", self._token())
        answer.raise_for_status()
        self.signing_key = (answer.json().get("webhooks") or {}).get("signing_key")

    def _authorized(self, method, path, body=None, params=None):
        """A device call; a 401 makes the app register again (then the call is repeated)."""
        answer = self._request(method, path, self._token(), body, params)
        if answer.status_code == 401:
            self.register()
            answer = self._request(method, path, self._token(), body, params)
        return answer

    # --- messages ------------------------------------------------------------------------
    def pull(self):
        answer = self._authorized("GET", "/message", params={"order": "lifo"})
        answer.raise_for_status()
        now = time.time()
        for message in answer.json():
            if message.get("state") == "Cancelling":
                self._cancel(message)
                continue
            with self.lock:
                known = message["id"] in self.local
                self.pulled_at.setdefault(message["id"], now)
                if not known:
                    self.local[message["id"]] = {"state": "Pending", "message": message}
            if known:
                self._patch(message["id"])  # SendStateWorker with its current state
            else:
                self._process(message["id"])

    def _cancel(self, message):
        item = self.local.get(message["id"])
        if item is None:  # never had it: report it Cancelled at once
            self.local[message["id"]] = {"state": "Cancelled", "message": message}
            self._patch(message["id"])
        elif item["state"] == "Pending":
            self._set(message["id"], "Cancelled")

    def release(self, text: str):
        """The app's send delay for `text` ends: its waiting messages go on."""
        self.hold.discard(text)
        for message_id, item in list(self.local.items()):
            if item["state"] == "Pending" and item["message"]["textMessage"]["text"] == text:
                self._process(message_id)

    def _patch(self, message_id, error=None):
        item = self.local[message_id]
        state = item["state"]
        phone = item["message"]["phoneNumbers"][0]
        answer = self._authorized("PATCH", "/message", [{
            "id": message_id, "state": state,
            "recipients": [{"phoneNumber": phone, "state": state, "error": item.get("error")}],
            "states": {state: iso_now()}}])
        if answer.status_code >= 400:
            self.errors.append((message_id, state, answer.status_code, answer.text))

    def _set(self, message_id, state, error=None):
        """A state change: stored, then reported (SendStateWorker is durable: a report the
        app was killed before making is made after its restart)."""
        item = self.local[message_id]
        item.update(state=state, reported=False, **({"error": error} if error else {}))
        self._patch(message_id)
        item["reported"] = True

    def _process(self, message_id):
        """The app's queue: hand to Android (Processed), sent, then the delivery report."""
        item = self.local[message_id]
        message = item["message"]
        if item["state"] == "Pending" and message["textMessage"]["text"] in self.hold:
            return  # waits in the app's queue
        if item["state"] == "Pending":
            self._set(message_id, "Processed")
        if item["state"] == "Processed":
            error = self.fail.get(message["textMessage"]["text"])
            if error:
                self._set(message_id, "Failed", error)
                return
            with self.lock:
                self.ledger.append({"message_id": int(message_id), "at": time.time(),
                                    "phone_number": message["phoneNumbers"][0],
                                    "message": message["textMessage"]["text"],
                                    "sim_slot": message.get("simNumber")})
            self._set(message_id, "Sent")
        if item["state"] == "Sent":
            self._set(message_id, "Delivered")

    # --- the SSE loop --------------------------------------------------------------------
    def start(self) -> "SmsgateApp":
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="smsgate-app")
        self.thread.start()
        return self

    def _delay(self) -> float:
        fast, middle, slow = RECONNECT_SECONDS
        delay = slow if self.attempts > 10 else middle if self.attempts > 5 else fast
        return delay * self.scale

    def _run(self):
        try:
            self.register()  # the app's start: POST /device, or PATCH when registered
            for message_id, item in list(self.local.items()):  # finish what it had taken
                if not item.get("reported", True):
                    self._patch(message_id)
                    item["reported"] = True
                if item["state"] not in ("Delivered", "Failed", "Cancelled"):
                    self._process(message_id)
            while not self.stop_event.is_set():
                self._connect_once()
                self.stop_event.wait(self._delay())
        except Killed:
            return

    def _connect_once(self):
        try:
            answer = self._request("GET", "/events", self._token(), session=self.sse)
        except requests.RequestException as exc:
            self.attempts += 1
            self.errors.append(("events", repr(exc)))
            return
        if self.stop_event.is_set():
            return
        kind = answer.headers.get("Content-Type", "")
        if answer.status_code != 200 or not kind.startswith("text/event-stream"):
            self.attempts += 1  # onFailure: no reset
            if answer.status_code == 401:
                self.register()
            return
        self.attempts = 0  # onOpen
        try:
            self.pull()  # PullMessagesWorker on connect
            for event, _ in parse_sse(answer.text):
                if event in (None, "MessageEnqueued"):
                    self.pull()
        except requests.RequestException as exc:
            self.errors.append(("pull", repr(exc)))
        self.attempts += 1  # onClosed -> scheduleReconnect

    def kill(self):
        """Gone at once: no further request, nothing reported."""
        self.stop_event.set()

    def join(self, timeout=30):
        if self.thread:
            self.thread.join(timeout)

    # --- the app's webhooks --------------------------------------------------------------
    def webhook(self, event: str, payload: dict, stamp: int | None = None):
        """One webhook as SendWebhookWorker sends it (None if none is set up for the event)."""
        hooks = [h for h in self.webhooks if h["event"] == event]
        if not hooks:
            return None
        body = json.dumps(_compact({"id": secrets.token_urlsafe(15), "webhookId": hooks[0]["id"],
                                    "event": event, "deviceId": self.registration["id"],
                                    "payload": payload}), separators=(",", ":")).encode()
        stamp = str(int(time.time()) if stamp is None else stamp)
        signature = hmac.new(self.signing_key.encode(), body + stamp.encode(),
                             hashlib.sha256).hexdigest()
        self.requests[("POST", "webhook")] += 1
        headers = {"Content-Type": "application/json", "X-Timestamp": stamp,
                   "X-Signature": signature}
        return self.api.post(hooks[0]["url"], data=body, timeout=(5, 30), verify=self.verify,
                             headers=headers)

    def receive_sms(self, sender: str, text: str, sim: int = 1):
        return self.webhook("sms:received", {
            "messageId": secrets.token_hex(4), "message": text, "sender": sender,
            "recipient": None, "simNumber": sim, "receivedAt": iso_now(), "phoneNumber": sender})

    def ping(self):
        return self.webhook("system:ping", {"health": {"status": "pass"}})


class Killed(Exception):
    """The app was killed: its thread ends."""


class RegistrationFailed(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(f"{status}: {text}")
        self.status, self.text = status, text
