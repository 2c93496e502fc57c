"""HTTP calls of the device protocol. Raises Retryable for what waiting fixes (network errors,
429, 5xx, a suspended account) and Rejected for what it does not (401 bad token, other 4xx)."""
import time

import requests

# Calls the gateway counts as a sign of life (it refreshes the device's last_seen on them), so a
# heartbeat is only needed when none of them happened for a heartbeat interval.
ALIVE_PATHS = ("/device/jobs", "/device/claims", "/device/reports", "/device/credentials",
               "/device/heartbeat")


class Retryable(Exception):
    def __init__(self, message, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Rejected(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Suspended(Retryable):
    """The operator suspended the device's account: nothing is wrong with the phone, and the
    account may be resumed at any time, so the agent keeps asking (backing off) and keeps
    every unsent report and received SMS for then, instead of stopping as for a revoked token."""


class GatewayClient:
    def __init__(self, url: str, token: str, timeout: float = 15.0, ca_file: str | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.last_alive = float("-inf")  # time.monotonic() of the last sign of life answered
        # HTTPS checked against this CA file instead of the system's, never unchecked (per
        # request: a session's own `verify` loses to $REQUESTS_CA_BUNDLE)
        self.verify = ca_file or True
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}",
                                     "User-Agent": "smsgw-agent/0.1"})

    def _call(self, method: str, path: str, timeout: float | None = None, **kwargs) -> dict:
        try:
            answer = self.session.request(method, self.url + path,
                                          timeout=timeout or self.timeout,
                                          verify=self.verify, **kwargs)
        except requests.RequestException as exc:
            raise Retryable(f"{method} {path}: {exc.__class__.__name__}: {exc}")
        if answer.status_code == 429 or answer.status_code >= 500:
            retry_after = answer.headers.get("Retry-After")
            raise Retryable(f"{method} {path}: HTTP {answer.status_code}",
                            float(retry_after) if retry_after and retry_after.isdigit() else None)
        try:
            body = answer.json()
        except ValueError:
            raise Retryable(f"{method} {path}: HTTP {answer.status_code}, not JSON")
        if answer.status_code >= 400:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            error = error if isinstance(error, dict) else {}
            if answer.status_code == 403 and error.get("code") == "account_suspended":
                raise Suspended(f"{method} {path}: {error.get('message') or 'suspended'}")
            raise Rejected(answer.status_code, error.get("message") or answer.text[:200])
        if path in ALIVE_PATHS:
            self.last_alive = time.monotonic()
        return body

    def jobs(self, wait: int, max_jobs: int) -> list:
        return self._call("GET", "/device/jobs", params={"wait": wait, "max": max_jobs},
                          timeout=wait + 15)["jobs"]

    def credentials(self) -> dict:
        """Direct mode: temporary credentials for the device's own queue."""
        return self._call("POST", "/device/credentials", json={})

    def claim(self, claims: list) -> list:
        """Direct mode: lease what the device received from its queue; results in order."""
        return self._call("POST", "/device/claims", json={"claims": claims})["results"]

    def report(self, reports: list) -> list:
        return self._call("POST", "/device/reports", json={"reports": reports})["results"]

    def incoming(self, messages: list) -> list:
        return self._call("POST", "/device/incoming", json={"messages": messages})["results"]

    def heartbeat(self, app_state: str, timeout: float | None = None, **status) -> dict:
        body = {"app_state": app_state, **{k: v for k, v in status.items() if v is not None}}
        return self._call("POST", "/device/heartbeat", json=body, timeout=timeout)
