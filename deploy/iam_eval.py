"""A small IAM policy evaluator: does one identity-based policy allow one request?

Written to AWS's documented evaluation logic for identity-based policies in one account
(IAM User Guide, "Policy evaluation logic" and "IAM JSON policy elements"), because the
evaluators on PyPI and in moto do not evaluate all of it: moto's `IAMPolicy` matches actions
case-sensitively, reads `.` in an ARN pattern as a regex wildcard, has no `NotResource`, and
answers an unmet condition of an Allow statement with an explicit deny; policyuniverse and
policy_sentry expand and write policies, they do not decide requests.

- A request is allowed when some statement allows it and no statement denies it (an explicit
  Deny always wins; nothing matching is an implicit deny).
- A statement applies when its Action (or NotAction), Resource (or NotResource) and every
  condition match. Actions compare case-insensitively, resources case-sensitively; `*` matches
  any run of characters and `?` one character. An ARN pattern matches component by component
  (partition, service, region, account), the resource part as a whole.
- Conditions: every operator must hold (AND), any value of an operator may match (OR). A key
  the request lacks makes the condition false, except for `...IfExists` operators and the
  negated ones (`StringNotEquals`, `StringNotLike`, `ArnNotEquals`, `ArnNotLike`). An operator
  this module does not know fails closed (ValueError).
"""
import re

STRING = {"StringEquals": (False, False), "StringNotEquals": (False, True),
          "StringEqualsIgnoreCase": (False, False), "StringNotEqualsIgnoreCase": (False, True),
          "StringLike": (True, False), "StringNotLike": (True, True),
          "ArnEquals": (True, False), "ArnLike": (True, False),
          "ArnNotEquals": (True, True), "ArnNotLike": (True, True)}


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) \
        is not None


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


def action_matches(pattern: str, action: str) -> bool:
    return _glob(pattern, action, ignore_case=True)


def resource_matches(pattern: str, arn: str) -> bool:
    if pattern == "*":
        return True
    if not pattern.startswith("arn:") or not arn.startswith("arn:"):
        return _glob(pattern, arn)
    want, got = pattern.split(":", 5), arn.split(":", 5)
    if len(want) != 6 or len(got) != 6:
        return False
    return all(_glob(w, g) for w, g in zip(want[1:], got[1:], strict=True))


def _string_match(operator: str, like: bool, fold: bool, wanted: str, actual: str) -> bool:
    if operator.startswith("Arn"):
        return resource_matches(wanted, actual)
    if like:
        return _glob(wanted, actual)
    return actual.lower() == wanted.lower() if fold else actual == wanted


def _condition_holds(operator: str, key_values: dict, context: dict) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator[:-len("IfExists")] if if_exists else operator
    for key, wanted in key_values.items():
        present = key in context
        if not present:
            negated = base in STRING and STRING[base][1]
            if not (if_exists or negated):
                return False
            continue
        actual = [str(v) for v in _list(context[key])]
        if base == "Bool":
            ok = any(a.lower() == str(w).lower() for a in actual for w in _list(wanted))
        elif base == "Null":
            ok = not any(str(w).lower() == "true" for w in _list(wanted))
        elif base in STRING:
            like, negated = STRING[base]
            fold = base.endswith("IgnoreCase")

            hit = any(_string_match(base, like, fold, str(w), a)
                      for a in actual for w in _list(wanted))
            ok = not hit if negated else hit
        else:
            raise ValueError(f"condition operator {operator} is not evaluated here")
        if not ok:
            return False
    return True


def statement_applies(statement: dict, action: str, resource: str, context: dict) -> bool:
    if "Action" in statement:
        if not any(action_matches(p, action) for p in _list(statement["Action"])):
            return False
    elif any(action_matches(p, action) for p in _list(statement["NotAction"])):
        return False
    if "Resource" in statement:
        if not any(resource_matches(p, resource) for p in _list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(resource_matches(p, resource) for p in _list(statement["NotResource"])):
            return False
    else:
        return False  # an identity-based statement without a resource grants nothing
    return all(_condition_holds(op, kv, context)
               for op, kv in (statement.get("Condition") or {}).items())


def decide(policies: list[dict], action: str, resource: str, context: dict | None = None) -> str:
    """"allow", "deny" (an explicit Deny matched) or "implicit-deny" for one request under
    the identity's policies."""
    context = context or {}
    allowed = False
    for policy in policies:
        for statement in _list(policy["Statement"]):
            if statement_applies(statement, action, resource, context):
                if statement["Effect"] == "Deny":
                    return "deny"
                allowed = allowed or statement["Effect"] == "Allow"
    return "allow" if allowed else "implicit-deny"


def allows(policies: list[dict], action: str, resource: str, context: dict | None = None) -> bool:
    return decide(policies, action, resource, context) == "allow"
