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
