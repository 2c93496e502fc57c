"""Direct polling (mode = "direct"): wait for jobs on the device's own SQS queue instead of in a
gateway Lambda, which is billed for every second a GET /device/jobs long poll waits.

The gateway vends temporary credentials that allow only sqs:ReceiveMessage on this device's
queue (POST /device/credentials; refreshed REFRESH_MARGIN seconds before they expire). What
arrives is claimed through POST /device/claims, which leases each job exactly as GET /device/jobs
would; only jobs answered `leased` are sent. The gateway deletes SQS messages (the device may
not), so reports are unchanged. Needs boto3 (`pip install './agent[direct]'`; pure Python).
"""
import json
import logging
import time

from smsgw_agent.client import Retryable

log = logging.getLogger("smsgw_agent")
REFRESH_MARGIN = 300  # seconds before expiry at which credentials are renewed
# SQS errors that mean "these credentials are no good any more": fetch new ones.
CREDENTIAL_ERRORS = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId",
                     "AccessDenied", "AccessDeniedException", "UnrecognizedClientException",
                     "SignatureDoesNotMatch"}


def _boto3_sqs(credentials: dict, read_timeout: float):
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - depends on the install
        raise SystemExit("smsgw-agent: direct mode needs boto3: pip install boto3 "
                         "(or pip install './agent[direct]')")
    return boto3.session.Session().client(
        "sqs", region_name=credentials["region"], endpoint_url=credentials.get("endpoint_url"),
        aws_access_key_id=credentials["access_key_id"],
        aws_secret_access_key=credentials["secret_access_key"],
        aws_session_token=credentials["session_token"],
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                      read_timeout=read_timeout))


class DirectPoller:
    """jobs(wait, max_jobs) like GatewayClient.jobs, but waiting on SQS directly."""

    def __init__(self, client, clock=time.time, sqs_factory=_boto3_sqs):
        self.client = client
        self.clock = clock
        self.sqs_factory = sqs_factory
        self.credentials = None
        self._sqs = None

    def _current(self):
        """The SQS client, with credentials fetched anew when missing or about to expire."""
        if self.credentials is None or \
                self.clock() * 1000 >= self.credentials["expiration"] - REFRESH_MARGIN * 1000:
            self.credentials = self.client.credentials()
            self._sqs = self.sqs_factory(self.credentials, 20 + 15)
            log.info("direct polling credentials valid until %s",
                     time.strftime("%H:%M:%S", time.localtime(
                         self.credentials["expiration"] / 1000)))
        return self._sqs

    def jobs(self, wait: int, max_jobs: int) -> list:
        from botocore.exceptions import BotoCoreError, ClientError
        sqs = self._current()
        try:
            answer = sqs.receive_message(
                QueueUrl=self.credentials["queue_url"], MaxNumberOfMessages=max_jobs,
                WaitTimeSeconds=wait, VisibilityTimeout=self.credentials["lease_seconds"])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in CREDENTIAL_ERRORS:
                self.credentials = None  # fetch new ones on the next try
            raise Retryable(f"SQS ReceiveMessage: {code or exc}")
        except BotoCoreError as exc:
            raise Retryable(f"SQS ReceiveMessage: {exc.__class__.__name__}: {exc}")
        received = answer.get("Messages", [])
        if not received:
            return []
        jobs, claims = [], []
        for sqs_message in received:
            try:
                job = json.loads(sqs_message["Body"])
                message_id = job["message_id"] if isinstance(job, dict) else None
            except (ValueError, KeyError):
                job, message_id = None, None
            if isinstance(message_id, bool) or not isinstance(message_id, int):
                job, message_id = None, None  # not a job: the gateway deletes it
            jobs.append(job)
            claims.append({"message_id": message_id,
                           "receipt_handle": sqs_message["ReceiptHandle"]})
        results = self.client.claim(claims)
        leased = [job for job, result in zip(jobs, results, strict=True)
                  if job is not None and result.get("result") == "leased"]
        if len(leased) < len(received):
            log.info("claimed %d, leased %d", len(received), len(leased))
        return leased


# What a gateway answers POST /device/credentials with when it does not offer direct polling:
# 409 direct_polling_disabled (a stage without a device role, e.g. some local setups), 403/404
# (an older gateway without the route: API Gateway REST says 403, HTTP API and chalice 404),
# 405 (a proxy that knows the path but not the method).
NOT_OFFERED = (403, 404, 405, 409)
PROBE_SECONDS = 3600  # how often a device polling the gateway asks again whether direct is offered
# Consecutive retryable failures of direct polling (credentials answering 5xx, SQS unreachable)
# after which the agent polls the gateway until the next probe, rather than retrying forever.
DIRECT_FAILURES_BEFORE_FALLBACK = 3


def _have_boto3() -> bool:
    try:
        import boto3  # noqa: F401
    except ImportError:
        return False
    return True


class AutoPoller:
    """mode = "auto" (the default): direct polling when the gateway offers it, gateway long-polls
    otherwise. Falls back from direct to the gateway when credentials stop being offered (the
    stage turned it off, or the agent now talks to an older gateway) and moves back to direct at
    the next probe (every PROBE_SECONDS) once they are offered again. Direct polling that keeps
    failing in a way waiting might fix (DIRECT_FAILURES_BEFORE_FALLBACK times in a row) also
    falls back until the next probe, so a broken role or an unreachable SQS endpoint does not
    stop the phone while the gateway answers."""

    def __init__(self, client, clock=time.monotonic, direct=None, has_boto3=_have_boto3):
        self.client = client
        self.clock = clock
        self.direct = direct or DirectPoller(client)
        self.mode = None  # "direct" | "gateway", decided by the first probe
        self._failures = 0
        self._next_probe = 0.0
        self._boto3 = has_boto3()
        if not self._boto3:
            log.warning("direct polling needs boto3 (pip install boto3): polling the gateway")

    def _fall_back(self, reason: str) -> None:
        if self.mode != "gateway":
            log.info("direct polling not offered (%s): long-polling the gateway", reason)
        self.mode = "gateway"
        self.direct.credentials = None
        self._next_probe = self.clock() + PROBE_SECONDS

    def jobs(self, wait: int, max_jobs: int) -> list:
        from smsgw_agent.client import Rejected, Suspended
        if self._boto3 and self.mode != "direct" and self.clock() >= self._next_probe:
            self.mode = "direct"  # probe: the direct poller fetches credentials first
            log.info("direct polling: asking the gateway for credentials")
        if self.mode == "direct":
            try:
                jobs = self.direct.jobs(wait, max_jobs)
                self._failures = 0
                return jobs
            except Rejected as exc:
                if exc.status not in NOT_OFFERED:
                    raise
                self._fall_back(f"HTTP {exc.status}")
            except Suspended:
                raise  # not the direct path's trouble: polling the gateway is refused as well
            except Retryable as exc:
                self._failures += 1
                if self._failures < DIRECT_FAILURES_BEFORE_FALLBACK:
                    raise
                self._failures = 0
                self._fall_back(f"{DIRECT_FAILURES_BEFORE_FALLBACK} failures in a row: {exc}")
        return self.client.jobs(wait, max_jobs)
