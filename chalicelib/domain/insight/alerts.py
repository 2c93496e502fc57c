"""Alert mails to the account's people: a phone offline (stopped for longer than the heartbeat
window), a SIM paused, a webhook endpoint disabled, messages expired unsent; and the recovery
mail when the phone or endpoint is back.

Rules, per cause (a phone, an endpoint, the account's expiries): a problem mails the account's
subscribed users if that cause has not mailed within ALERT_MIN_SECONDS (an hour); a recovery
mails only if its problem's mail went out. A flapping phone therefore mails at most one
problem and one recovery an hour.

Each step is a conditional write on the cause's AlertState item, so a replayed stream record or
two concurrent writers mail once: (1) `problem` flips problem false->true; of two writers one
passes, the other stops. (2) The one that passed claims the hourly slot (`mailed_at` older than
an hour, set to now, `episode_mailed` true); only then does it mail. (3) `recovered` flips
true->false on condition that this episode mailed (then it mails), else flips it silently; of
two recoveries one passes. A recovery that lands between (1) and (2) of the same cause finds
`episode_mailed` false and stays silent, and the problem mail then goes out late; the records
of one phone reach the stream function in order, one batch at a time per shard, so that order
does not happen for phones.
"""
import logging
import os
import secrets
import time

from chalicelib.core import clock, settings
from chalicelib.storage.model_base import update_if

log = logging.getLogger("smsgw")


def _state(account_id: str, cause: str):
    from chalicelib.storage.insight_tables import AlertState
    return AlertState(account_id=account_id, cause=cause)


def problem(account_id: str, cause: str, subject: str, text: str, now: int | None = None,
            ongoing: bool = True) -> bool:
    """`cause` became a problem. `ongoing` False: an event (expiries), not a state with a
    recovery. Returns True if this call mailed."""
    from chalicelib.storage.insight_tables import AlertState
    now = clock.now_ms() if now is None else now
    if ongoing and not update_if(_state(account_id, cause), [
            AlertState.problem.set(True), AlertState.episode_mailed.set(False)],
            AlertState.problem.does_not_exist() | (AlertState.problem == False)):  # noqa: E712
        return False  # already a problem: mailed (or held back) when it began
    slot = now - settings.current().alert_min_seconds * 1000
    if not update_if(_state(account_id, cause), [AlertState.mailed_at.set(now),
                                               AlertState.episode_mailed.set(True)],
                   AlertState.mailed_at.does_not_exist() | (AlertState.mailed_at <= slot)):
        return False  # this cause mailed within the hour: no flood
    try:
        return mail(account_id, subject, text)
    except MailNotSent:
        # Nobody got it: hand the slot back and, for a state, the problem too, so the alert is
        # not marked mailed and the cause's next change mails again.
        undo = [AlertState.mailed_at.set(slot), AlertState.episode_mailed.set(False)]
        if ongoing:
            undo.append(AlertState.problem.set(False))
        update_if(_state(account_id, cause), undo, AlertState.mailed_at == now)
        return False


def recovered(account_id: str, cause: str, subject: str, text: str) -> bool:
    """`cause` is fine again; mails if its problem's mail went out."""
    from chalicelib.storage.insight_tables import AlertState
    back = [AlertState.problem.set(False)]
    if update_if(_state(account_id, cause), back, (AlertState.problem == True)  # noqa: E712
               & (AlertState.episode_mailed == True)):  # noqa: E712
        try:
            return mail(account_id, subject, text)
        except MailNotSent:  # back to "problem, mailed": the next recovery mails
            update_if(_state(account_id, cause), [AlertState.problem.set(True)],
                      AlertState.problem == False)  # noqa: E712
            return False
    update_if(_state(account_id, cause), back, AlertState.problem == True)  # noqa: E712
    return False


# --- who gets them ------------------------------------------------------------------------

def subscribe(account_id: str, email: str) -> None:
    from chalicelib.storage.insight_tables import AlertSubscription
    AlertSubscription(account_id=account_id, email=email, token=secrets.token_hex(16),
                      created_at=clock.now_ms()).save()


def unsubscribe(account_id: str, email: str | None = None, token: str | None = None) -> bool:
    """By the user (email) or by a mail's link (token). True if this call ended a
    subscription: the delete is conditional on the token it read, so of two racing calls one
    wins, and an old link cannot end a subscription made again since (a new token)."""
    from pynamodb.exceptions import DeleteError

    from chalicelib.storage.insight_tables import AlertSubscription
    for sub in _subscriptions(account_id, email, token):
        try:
            sub.delete(condition=AlertSubscription.token == sub.token)
            return True
        except DeleteError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
    return False


def token_valid(account_id: str, token: str) -> bool:
    """Whether a mail's unsubscribe link still names a subscription (changes nothing)."""
    return bool(_subscriptions(account_id, token=token))


def _subscriptions(account_id: str, email: str | None = None, token: str | None = None):
    import hmac

    from chalicelib.storage.insight_tables import AlertSubscription
    return [sub for sub in AlertSubscription.query(account_id)
            if (email and sub.email == email)
            or (token and hmac.compare_digest(sub.token, token))]


def subscribed(account_id: str, email: str) -> bool:
    from chalicelib.storage.insight_tables import AlertSubscription
    return any(s.email == email for s in AlertSubscription.query(account_id))


class MailNotSent(Exception):
    """Every subscriber's mail failed, each after its retries."""


def mail(account_id: str, subject: str, text: str) -> bool:
    """Mail each subscriber. One whose mail cannot be built or sent is tried MAIL_ATTEMPTS
    times, then logged, and the others still get theirs. True if anyone got it; MailNotSent if
    there were subscribers and none did (the caller then leaves the alert unmailed)."""
    from chalicelib.core.text import one_line
    from chalicelib.storage.insight_tables import AlertSubscription
    subject = one_line(f"[smsgw] {subject}")[:200]  # a name stored before names were checked
    sent = failed = 0
    for sub in AlertSubscription.query(account_id):
        link = f"{settings.current().public_url}/dashboard/unsubscribe/{account_id}/{sub.token}"
        body = f"{text}\n\nStop these mails: {link}\n"
        if _deliver_retried(sub.email, subject, body, link):
            sent += 1
        else:
            failed += 1
    if failed and not sent:
        raise MailNotSent(subject)
    return sent > 0


MAIL_ATTEMPTS, MAIL_BACKOFF_SECONDS = 3, 0.2


def _deliver_retried(to: str, subject: str, body: str, link: str) -> bool:
    for attempt in range(1, MAIL_ATTEMPTS + 1):
        try:
            deliver(to, subject, body, link)
            return True
        except Exception:
            if attempt == MAIL_ATTEMPTS:
                log.exception("alert mail to subscriber %s failed %d times: %s",
                              _masked(to), attempt, subject)
                return False
            time.sleep(MAIL_BACKOFF_SECONDS * attempt)
    return False


def _masked(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def deliver(to: str, subject: str, body: str, unsubscribe: str | None = None) -> None:
    """One plain-text mail: SES on AWS, an .eml file locally. Alerts carry an unsubscribe
    link; account mails (domain/account_mails.py: sign-up, reset) do not."""
    headers = [("List-Unsubscribe", f"<{unsubscribe}>"),
               ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")] if unsubscribe else []
    if settings.current().alert_sender:
        from chalicelib.storage import aws
        simple = {"Subject": {"Data": subject}, "Body": {"Text": {"Data": body}}}
        if headers:
            simple["Headers"] = [{"Name": name, "Value": value} for name, value in headers]
        aws.ses().send_email(FromEmailAddress=settings.current().alert_sender,
                             Destination={"ToAddresses": [to]}, Content={"Simple": simple})
        return
    if settings.current().mail_dir:
        from email.message import EmailMessage
        from pathlib import Path
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "smsgw@localhost", to, subject
        for name, value in headers:
            message[name] = value
        message.set_content(body)
        folder = Path(settings.current().mail_dir)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # its unsubscribe token is the reader's: born 0600, for its owner only
        name = folder / f"{time.time_ns()}-{secrets.token_hex(4)}.eml"
        with os.fdopen(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            out.write(bytes(message))
        print(f"mail to {to}: {subject}", flush=True)
        return
    log.warning("alert mail not sent (no SMSGW_ALERT_SENDER or SMSGW_MAIL_DIR): %s", subject)


# --- the causes ---------------------------------------------------------------------------

def from_device_records(records: list[dict]) -> int:
    """Phones that stopped or came back, and SIMs paused, from the devices stream (the
    emit_events function); a record's pause is then marked read (pacing.pause_read)."""
    from chalicelib.domain import pacing
    from chalicelib.domain.webhooks import events
    mailed = 0
    for record in records:
        if events._table(record) != "devices" or record.get("eventName") == "REMOVE":
            continue
        change = record["dynamodb"]
        old, new = events._plain(change.get("OldImage")), events._plain(change.get("NewImage"))
        if not new or not new.get("account_id"):
            continue
        try:
            mailed += _offline_or_back(old, new)
            for sim, until, reason in pacing.pauses_in(old, new):
                mailed += sim_paused(new["account_id"], new["device_uid"],
                                     new.get("name") or new["device_uid"], sim, reason, until)
            if new.get("pause_unseen") is not None:
                pacing.pause_read(new["device_uid"])
        except Exception:  # an alert must never hold up the stream behind it
            log.exception("alert for device %s failed", new.get("device_uid"))
    return mailed


def _offline_or_back(old: dict, new: dict) -> bool:
    was, now = old.get("app_state") == "running", new.get("app_state") == "running"
    if was == now:
        return False
    name = new.get("name") or new.get("device_uid")
    cause = f"device_offline#{new['device_uid']}"
    minutes = settings.current().heartbeat_window_seconds // 60
    if now:
        return recovered(new["account_id"], cause, f"Phone {name} is back online",
                         f"Your phone {name} is running again.")
    if old:
        return problem(new["account_id"], cause, f"Phone {name} is offline",
                       f"Your phone {name} has not been heard from for more than {minutes} "
                       f"minutes (last seen {clock.fmt(new.get('last_seen'))} UTC). Messages "
                       "for the pool go to your other phones.")
    return False


def expired(account_id: str, count: int) -> bool:
    return problem(account_id, "expired", f"{count} messages expired unsent",
                   f"{count} of your messages expired before a phone could send them. Check "
                   "that your phones are running and not paused.", ongoing=False)


def sim_paused(account_id: str, device_uid: str, name: str, sim: int, reason: str,
               until_ms: int) -> bool:
    """A SIM rested after SIM trouble (pacing's pause), read from the devices stream. An event
    like expiries (the pause ends by time alone, with no write to see)."""
    return problem(account_id, f"sim_paused#{device_uid}#{sim}", f"SIM {sim} of {name} is "
                   "paused", f"SIM {sim} of your phone {name} is paused until "
                   f"{clock.fmt(until_ms)} UTC: {reason}. The pool sends through your other "
                   "SIMs and phones meanwhile.", ongoing=False)


def webhook_disabled(account_id: str, webhook_id: str, url: str, reason: str) -> bool:
    return problem(account_id, f"webhook_disabled#{webhook_id}", "A webhook endpoint was "
                   "disabled", f"Your endpoint {url} was disabled: {reason}")


def webhook_enabled(account_id: str, webhook_id: str, url: str) -> bool:
    return recovered(account_id, f"webhook_disabled#{webhook_id}", "A webhook endpoint is "
                     "enabled again", f"Your endpoint {url} receives events again.")
