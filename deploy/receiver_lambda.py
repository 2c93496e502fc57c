"""The webhook receiver of a rehearsal (deploy/rehearse): a Lambda function behind a public
function URL, in its own throwaway stack, that puts every request it gets (headers and raw body)
on an SQS queue and answers 200. It checks nothing: deploy/rehearse reads the queue and verifies
each request's signature with the shipped helper (clients/smsgw_webhook.py), so a request that
is not the gateway's fails the rehearsal instead of passing unseen. Its source is the function's
inline code (CloudFormation's ZipFile, at most 4,096 bytes); locally, the same handler serves
the rehearsal's receiver on 127.0.0.1 (deploy/rehearse_journey.py)."""
import base64
import json
import os


def handler(event, context, sqs=None, queue_url=None):
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    if sqs is None:
        import boto3
        sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=queue_url or os.environ["QUEUE_URL"],
                     MessageBody=json.dumps({"headers": event.get("headers") or {},
                                             "body": body}))
    return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "ok"}
