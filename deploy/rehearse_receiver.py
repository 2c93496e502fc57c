"""Where a rehearsal's webhook goes, and how it is seen to arrive.

On AWS a laptop cannot take inbound HTTP from the gateway's Lambda, so the rehearsal deploys a
receiver the gateway can reach: a second throwaway stack (`template()`) with a Lambda function
behind a public function URL (deploy/receiver_lambda.py) that puts each request on an SQS queue
of that stack. The rehearsal reads the queue with the owner's credentials (`QueueReceiver`) and
verifies each request's signature with the shipped helper, so "delivered" means the gateway's
signed request crossed the internet to a URL it did not know before. Locally
(`deploy/rehearse --local`), the same handler serves on 127.0.0.1 (`LocalReceiver`) and writes
to a queue on the local gateway's emulator: the same reading and checking code runs.

An owner who would rather use a receiver of their own passes `--webhook-url`; it is checked
through the gateway's delivery log (`DeliveryLog`), which records the receiver's 2xx."""
import base64
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import receiver_lambda  # noqa: E402

INLINE_LIMIT = 4096  # bytes of ZipFile code CloudFormation accepts inline


def template(function_name: str) -> dict:
    """The receiver's stack: queue, role (SendMessage to that queue and its own logs only),
    function with its log group, and a public function URL (AuthType NONE needs two grants to
    anyone since October 2025, as the gateway's own URL in deploy/make_template.py)."""
    code = (HERE / "receiver_lambda.py").read_text()
    assert len(code.encode()) <= INLINE_LIMIT, "receiver_lambda.py must stay inline-sized"
    log_group = f"/aws/lambda/{function_name}"
    return {"AWSTemplateFormatVersion": "2010-09-09",
            "Description": "smsgw rehearsal: a webhook receiver that queues what it gets",
            "Resources": {
                "Received": {"Type": "AWS::SQS::Queue", "Properties": {
                    "MessageRetentionPeriod": 3600}},
                "ReceiverLogs": {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Delete",
                                 "Properties": {"LogGroupName": log_group,
                                                "RetentionInDays": 1}},
                "ReceiverRole": {"Type": "AWS::IAM::Role", "Properties": {
                    "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole"}]},
                    "Policies": [{"PolicyName": "queue-and-logs", "PolicyDocument": {
                        "Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "sqs:SendMessage",
                             "Resource": {"Fn::GetAtt": ["Received", "Arn"]}},
                            {"Effect": "Allow",
                             "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                             "Resource": {"Fn::GetAtt": ["ReceiverLogs", "Arn"]}}]}}]}},
                "Receiver": {"Type": "AWS::Lambda::Function", "DependsOn": ["ReceiverLogs"],
                             "Properties": {
                    "FunctionName": function_name, "Runtime": "python3.12",
                    "Architectures": ["arm64"], "Handler": "index.handler", "Timeout": 10,
                    "MemorySize": 128, "Role": {"Fn::GetAtt": ["ReceiverRole", "Arn"]},
                    "Code": {"ZipFile": code},
                    "Environment": {"Variables": {"QUEUE_URL": {"Ref": "Received"}}}}},
                "ReceiverUrl": {"Type": "AWS::Lambda::Url", "Properties": {
                    "TargetFunctionArn": {"Fn::GetAtt": ["Receiver", "Arn"]},
                    "AuthType": "NONE"}},
                "ReceiverUrlPermission": {"Type": "AWS::Lambda::Permission", "Properties": {
                    "Action": "lambda:InvokeFunctionUrl", "FunctionName": {"Ref": "Receiver"},
                    "Principal": "*", "FunctionUrlAuthType": "NONE"}},
                "ReceiverInvokePermission": {"Type": "AWS::Lambda::Permission", "Properties": {
                    "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "Receiver"},
                    "Principal": "*", "InvokedViaFunctionUrl": True}}},
            "Outputs": {
                "ReceiverUrl": {"Value": {"Fn::GetAtt": ["ReceiverUrl", "FunctionUrl"]}},
                "QueueUrl": {"Value": {"Ref": "Received"}}}}


def _verified(body: str, headers: dict, secret: str) -> dict | None:
    if str(ROOT / "clients") not in sys.path:
        sys.path.insert(0, str(ROOT / "clients"))
    import smsgw_webhook
    try:
        return smsgw_webhook.verified_event(body.encode(), headers, [secret])
    except smsgw_webhook.InvalidSignature:
        return None


class QueueReceiver:
    """Requests a receiver put on an SQS queue; `wait()` finds one signed event among them."""

    def __init__(self, url: str, queue_url: str, sqs):
        self.url, self.queue_url, self.sqs = url, queue_url, sqs
        self.events, self.unsigned = [], 0

    def _drain(self, wait: int) -> None:
        answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                          WaitTimeSeconds=wait)
        for message in answer.get("Messages", []):
            self.events.append(json.loads(message["Body"]))
            self.sqs.delete_message(QueueUrl=self.queue_url,
                                    ReceiptHandle=message["ReceiptHandle"])

    def wait(self, secret: str, event_type: str, message_id, timeout: float) -> dict:
        """The verified `event_type` event of `message_id`; StepFailed-worthy ValueError if it
        did not come in `timeout` seconds or came without a valid signature."""
        deadline = time.monotonic() + timeout
        while True:
            for request in self.events:
                event = _verified(request["body"], request["headers"], secret)
                if event is None:
                    continue
                data = event.get("data") or {}
                if event.get("type") == event_type and str(data.get("message_id")) == str(
                        message_id):
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                unsigned = sum(1 for r in self.events
                               if _verified(r["body"], r["headers"], secret) is None)
                raise ValueError(f"no signed {event_type} for message {message_id} within "
                                 f"{timeout:.0f} s ({len(self.events)} requests received, "
                                 f"{unsigned} without a valid signature)")
            self._drain(max(0, min(5, int(left))))

    def close(self) -> None:
        pass


class LocalReceiver(QueueReceiver):
    """deploy/receiver_lambda.py's handler on 127.0.0.1, writing to a queue it makes on the
    emulator (the local gateway's); the queue is deleted at close()."""

    def __init__(self, sqs):
        queue_url = sqs.create_queue(
            QueueName=f"smsgw-rehearse-receiver-{secrets.token_hex(4)}")["QueueUrl"]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = receiver_lambda.handler(
                    {"headers": {k.lower(): v for k, v in self.headers.items()},
                     "body": base64.b64encode(body).decode(), "isBase64Encoded": True},
                    None, sqs=receiver.sqs, queue_url=receiver.queue_url)
                self.send_response(answer["statusCode"])
                self.send_header("Content-Length", str(len(answer["body"])))
                self.end_headers()
                self.wfile.write(answer["body"].encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        super().__init__(f"http://127.0.0.1:{self.server.server_address[1]}/hooks", queue_url,
                         sqs)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.sqs.delete_queue(QueueUrl=self.queue_url)


class DeliveryLog:
    """The owner's own receiver (--webhook-url): the gateway's delivery log says whether an
    `event_type` delivery to it ended `delivered` (a 2xx); signatures are the owner's to check."""

    def __init__(self, url: str, cli):
        self.url, self.cli = url, cli
        self.account_id = self.webhook_id = None

    def wait(self, secret: str, event_type: str, message_id, timeout: float) -> dict:
        deadline, rows = time.monotonic() + timeout, []
        while time.monotonic() < deadline:
            rows = self.cli("webhook", "deliveries", self.account_id, self.webhook_id, "--json")
            for row in rows:
                if row.get("type") == event_type and row.get("state") == "delivered":
                    return row
            time.sleep(3)
        states = ", ".join(f"{r.get('type')} {r.get('state')}" for r in rows) or "none"
        raise ValueError(f"no {event_type} delivered to {self.url} within {timeout:.0f} s "
                         f"(deliveries: {states})")

    def close(self) -> None:
        pass
