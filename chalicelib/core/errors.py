"""Domain errors. Each says what was wrong and, where it applies, which parameter and when to retry;
each surface answers them in its style (surfaces/answers.py), from `http_status` and `code`."""


class GatewayError(Exception):
    """A refusal the client is told about. A subclass names its `code` and `http_status` in its
    class line: `class NotFound(GatewayError, code="not_found", http_status=404)`."""
    code = "error"
    http_status = 400  # what the HTTP surfaces answer (the compat API's is always 200)
    bare = False  # True: the envelope's data stays null (answers the reference fixes exactly)
    malformed = False  # True: the request's form is wrong, not its values (REST v1: 400, not 422)

    def __init_subclass__(cls, *, code: str | None = None, http_status: int | None = None,
                          **kwargs):
        super().__init_subclass__(**kwargs)
        if code:
            cls.code = code
        if http_status:
            cls.http_status = http_status

    def __init__(self, message: str, parameter: str | None = None, retry_after: int | None = None,
                 code: str | None = None, **extra):
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        self.retry_after = retry_after
        self.extra = extra  # more facts for the answer (e.g. a message's current status)
        if code:
            self.code = code


class BadRequest(GatewayError, code="invalid_parameter"):
    """A value is refused; `parameter` names it where one parameter is to blame."""


class Malformed(BadRequest, code="invalid_request"):
    """The request's form is wrong (not JSON, a field of the wrong type or unknown); a
    well-formed request whose values are refused is a plain BadRequest."""
    malformed = True


class MethodNotAllowed(Malformed, code="method_not_allowed", http_status=405):
    """The route does not serve this method; `allow=` (extra) lists those it serves."""


class UnsupportedMediaType(Malformed, code="unsupported_media_type", http_status=415):
    """The body's Content-Type is not one the route reads."""


class OptedOut(BadRequest, code="opted_out"):
    """The recipient replied STOP (or the owner listed them): nothing is sent until START."""


class Unauthorized(GatewayError, code="unauthorized", http_status=401):
    """The caller is not who it must be: no credential, or a wrong, expired or spent one."""


class Forbidden(GatewayError, code="forbidden", http_status=403):
    """Not allowed here: the caller's role may not, or the gateway does not offer it."""


class NotFound(GatewayError, code="not_found", http_status=404):
    """What the request names does not exist (or is not the caller's to see)."""


class Conflict(GatewayError, code="conflict", http_status=409):
    """The request clashes with what is stored (a duplicate, a state that does not allow it)."""


class RateLimited(GatewayError, code="rate_limited", http_status=429):
    """Too many requests or attempts; retry after `retry_after` seconds."""


class QuotaExceeded(GatewayError, code="quota_exceeded"):
    """An operator's quota refused the request (domain/quotas.py). `quota` names it; a quota of
    a period (messages per day, requests per minute) is 429 with `resets_at` (epoch ms) and
    retry_after, one of a count (phones, webhook endpoints) is 403 until one is removed."""

    def __init__(self, message: str, *, quota: str, limit: int, resets_at: int | None = None,
                 retry_after: int | None = None, parameter: str | None = None):
        super().__init__(message, parameter, retry_after, quota=quota, limit=limit,
                         resets_at=resets_at)
        self.http_status = 429 if resets_at is not None else 403


class Suspended(Forbidden, code="account_suspended"):
    """The operator suspended the account (domain/operators.py): nothing of it works until
    resumed, and nothing of it is deleted."""


class Unavailable(GatewayError, code="temporarily_unavailable", http_status=503):
    """Storage or queue trouble the client should retry after `retry_after` seconds."""


class InvalidOtp(GatewayError, code="invalid_otp", http_status=422):
    """verify_otp's one answer for a wrong, expired, used or unknown code, as the reference has
    it: `data` is null, so the answer tells a guesser nothing more. 422: well-formed, refused
    (the compat API answers 200, `data` null)."""
    bare = True

    def __init__(self):
        super().__init__("Invalid or Expired OTP.")


THROTTLE_CODES = {"ProvisionedThroughputExceededException", "ThrottlingException",
                  "RequestLimitExceeded", "Throttling", "InternalServerError",
                  "ServiceUnavailable", "TransactionInProgressException",
                  "TransactionConflictException"}


def _aws_error_code(exc: BaseException) -> str | None:
    """The AWS error code behind an exception (PynamoDB wraps botocore's in `.cause`)."""
    for _ in range(5):
        if exc is None:
            return None
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            return response.get("Error", {}).get("Code")
        exc = getattr(exc, "cause", None) or exc.__cause__
    return None


def from_unexpected(exc: BaseException) -> Unavailable:
    """What a client is told about an exception that is not a GatewayError: AWS throttling is
    `temporarily_unavailable` (retry in 1 s); anything else `internal_error` (retry in 5 s).
    Never the exception's text."""
    code = _aws_error_code(exc)
    if code in THROTTLE_CODES or (code is None and "Throttl" in repr(exc)):
        return Unavailable("The gateway is busy; retry shortly.", retry_after=1)
    return Unavailable("Internal error; nothing was changed by this request. Retry shortly.",
                       retry_after=5, code="internal_error")
