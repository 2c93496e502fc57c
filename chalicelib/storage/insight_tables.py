"""Storage of the owner's insight (chalicelib/domain/insight/): daily counters and the marks of
the stream windows already counted into them.

A `DailyCount` item is one day of one account (`day` = "2026-12-04") or of one of its phones
(`day` = "2026-12-04#<device_id>"). Its counters are plain number attributes named by what
they count (`sent`, `failed`, `r:<reason>`, `h3`...), added by one UpdateItem each, so a
stats page reads the account's days with one Query whatever the number of messages.
"""
from pynamodb.attributes import BooleanAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.storage.model_base import table_meta


class DailyCount(Model):
    Meta = table_meta("daily-counts")
    account_id = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)


class CountedWindow(Model):
    """One stream window (shard + window start + part) whose counts are in DailyCount: written in
    the same transaction as those counts, so a window is counted once however often Lambda
    hands it over. Kept two days (a stream keeps records 24 h)."""
    Meta = table_meta("counted-windows")
    window_id = UnicodeAttribute(hash_key=True)
    counted_at = NumberAttribute()
    expires = TTLAttribute()


class AlertState(Model):
    """One cause of alert mails of an account (`cause` = "device_offline#<uid>", ...): whether
    it is a problem now, when it last mailed, whether this problem's mail went out (then its
    recovery mails too). Changed only by conditional writes (domain/insight/alerts.py)."""
    Meta = table_meta("alert-states")
    account_id = UnicodeAttribute(hash_key=True)
    cause = UnicodeAttribute(range_key=True)
    problem = BooleanAttribute(null=True)
    mailed_at = NumberAttribute(null=True)
    episode_mailed = BooleanAttribute(null=True)


class AlertSubscription(Model):
    """A dashboard user who asked for alert mails (profile page); `token` is the secret of the
    one-click unsubscribe link in every mail."""
    Meta = table_meta("alert-subscriptions")
    account_id = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute(range_key=True)
    token = UnicodeAttribute()
    created_at = NumberAttribute()


MODELS = (DailyCount, CountedWindow, AlertState, AlertSubscription)
