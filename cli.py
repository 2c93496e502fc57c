"""Admin command line (`.venv/bin/smsgw`, or `python cli.py`): accounts, API keys, IP
whitelists, devices, dashboard users and webhooks.

Works the same against the local gateway and a deployed stage; it talks to the stage's tables
and queues directly. Which stage:
  - SMSGW_STAGE set: that stage, with AWS credentials and region as for any AWS tool
    (AWS_ENDPOINT_URL too, for an emulator);
  - else the local gateway running on the data folder (local-data/, or $SMSGW_DATA), found by
    itself; none running: a one-line hint.
"""
import functools
import json
import os
import sys

import click

from localgw.data import use_local_gateway

# Before chalicelib reads the environment (table names come from the stage).
LOCAL = use_local_gateway()

from chalicelib.core import clock, settings  # noqa: E402

try:  # read once, before any command: a bad variable stops here, named, without a traceback
    settings.current()
except settings.SettingsError as _error:
    sys.exit(f"Error: {_error}")

from chalicelib.core.errors import GatewayError  # noqa: E402
from chalicelib.domain import accounts, devices, pool  # noqa: E402

NO_STAGE = ("no local gateway is running (start one with ./run-local); for an AWS stage set "
            "SMSGW_STAGE and AWS credentials")


def _unreachable(error: Exception) -> str:
    """One line for a failure to reach the stage's AWS (never a traceback)."""
    where = f"stage '{settings.current().stage}'" + (f" at {os.environ['AWS_ENDPOINT_URL']}"
                                           if os.environ.get("AWS_ENDPOINT_URL") else "")
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "ResourceNotFound" in text or "does not exist" in text or "non-existent" in text:
        return f"{where}: its tables do not exist ({text})"
    return f"cannot reach {where}: {text}"


class Cli(click.Group):
    def invoke(self, ctx):
        from botocore.exceptions import BotoCoreError, ClientError
        from pynamodb.exceptions import PynamoDBException
        if LOCAL is None and "SMSGW_STAGE" not in os.environ and ctx.protected_args \
                and "--help" not in sys.argv:
            raise click.ClickException(NO_STAGE)
        try:
            return super().invoke(ctx)
        except GatewayError as error:
            raise click.ClickException(error.message)
        except (BotoCoreError, ClientError, PynamoDBException) as error:
            raise click.ClickException(_unreachable(getattr(error, "cause", None) or error))


def takes_effect() -> str:
    """When a warm gateway honours a key or whitelist change (its auth cache)."""
    return (f"takes effect within {settings.current().auth_cache_seconds} s "
            "(SMSGW_AUTH_CACHE_SECONDS)")


def emit(as_json: bool, data, text: str) -> None:
    field = click.get_current_context().params.get("get")
    if field:  # one value, for shell scripts: ID=$(smsgw ... --get account_id)
        if not isinstance(data, dict) or field not in data:
            raise click.UsageError(f"--get: no field '{field}'"
                                   + (f" (fields: {', '.join(data)})" if isinstance(data, dict)
                                      else ""))
        click.echo(data[field])
        return
    click.echo(json.dumps(data, indent=2) if as_json else text)


def json_option(command):
    """--json, and --get FIELD (read by emit(); the command itself never sees it)."""
    @functools.wraps(command)
    def run(*args, get=None, **kwargs):
        return command(*args, **kwargs)
    run = click.option("--get", metavar="FIELD",
                       help="Print only this field of the --json output.")(run)
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(run)


def account_command(group, name, *arguments, **settings):
    """Declares a command of `group` on one account: ACCOUNT_ID, then `arguments` (more positional
    names, in order); `settings` go to click's command()."""
    def declare(function):
        for argument in reversed(("account_id", *arguments)):
            function = click.argument(argument)(function)
        return group.command(name, **settings)(function)
    return declare


@click.group(cls=Cli)
def main():
    """Manage accounts, keys, whitelists and devices of an SMS gateway stage."""


@main.group()
def account():
    """Accounts."""


@account.command("create")
@click.argument("name")
@json_option
def account_create(name, as_json):
    """Create an account called NAME."""
    acct = accounts.create_account(name)
    emit(as_json, {"account_id": acct.account_id, "name": acct.name},
         f"created account {acct.account_id} ({acct.name})")


@account.command("list")
@json_option
def account_list(as_json):
    """List accounts."""
    rows = [{"account_id": a.account_id, "name": a.name, "created_at": clock.fmt(a.created_at),
             "ip_whitelist": list(a.ip_whitelist or [])} for a in accounts.list_accounts()]
    emit(as_json, rows, "\n".join(f"{r['account_id']}  {r['name']}  {r['created_at']}"
                                  for r in rows) or "no accounts")


@account_command(account, "export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="The zip to write (default: smsgw-export-ACCOUNT_ID-DATE.zip here).")
@json_option
def account_export(account_id, output, as_json):
    """Export ACCOUNT_ID's messages, phones, webhooks and opt-outs as a zip of CSV and JSON
    (read straight from DynamoDB: no size bound, unlike the dashboard and REST v1)."""
    from chalicelib.domain import export
    path = output or export.filename(account_id)
    with open(path, "wb") as out:
        counts = export.write_zip(account_id, out)
    emit(as_json, {"account_id": account_id, "path": path, "rows": counts},
         f"exported {account_id} to {path}: " + ", ".join(f"{n} {kind.replace('_', '-')}"
                                                           for kind, n in counts.items()))


@account_command(account, "delete")
@click.option("--confirm", "confirm_name", metavar="NAME", required=True,
              help="The account's name, typed out: nothing is deleted unless it matches.")
@json_option
def account_delete(account_id, confirm_name, as_json):
    """Delete ACCOUNT_ID: its keys, sessions, device and app tokens stop working at once; all
    its data is purged within minutes (export it first)."""
    from chalicelib.domain import account_deletion
    acct = account_deletion.delete(account_id, confirm_name)
    emit(as_json, {"account_id": acct.account_id, "name": acct.name, "deleted": True,
                   "purge_after_seconds": settings.current().purge_after_seconds},
         f"deleted account {acct.account_id} ({acct.name}): its credentials no longer work; "
         f"its data is purged from {settings.current().purge_after_seconds // 60} minutes from now")


@main.group()
def key():
    """API keys (64 characters, shown once at creation)."""


@account_command(key, "create")
@click.option("--label", default="", help="A note to recognise the key by.")
@json_option
def key_create(account_id, label, as_json):
    """Issue a new API key for ACCOUNT_ID."""
    plain, record = accounts.create_key(account_id, label)
    emit(as_json, {"key_id": record.key_id, "api_key": plain, "account_id": account_id},
         f"key {record.key_id}: {plain}\n(shown once: store it now)")


@account_command(key, "list")
@json_option
def key_list(account_id, as_json):
    """List the keys of ACCOUNT_ID (ids only; keys are never stored)."""
    rows = [{"key_id": k.key_id, "label": k.label, "created_at": clock.fmt(k.created_at),
             "revoked_at": clock.fmt(k.revoked_at), "revoked": accounts.key_revoked(k)}
            for k in accounts.list_keys(account_id)]
    emit(as_json, rows, "\n".join(
        f"{r['key_id']}  {r['label'] or '-'}  created {r['created_at']}"
        + (f"  REVOKED {r['revoked_at']}" if r["revoked"] else
           f"  revoked at {r['revoked_at']} (rotation)" if r["revoked_at"] else "")
        for r in rows) or "no keys")


@account_command(key, "revoke", "key_id")
@json_option
def key_revoke(account_id, key_id, as_json):
    """Revoke KEY_ID of ACCOUNT_ID."""
    before = next((k for k in accounts.list_keys(account_id) if k.key_id == key_id), None)
    already = before is not None and accounts.key_revoked(before)
    record = accounts.revoke_key(account_id, key_id)
    text = (f"{record.key_id} was already revoked (at {clock.fmt(record.revoked_at)} UTC); "
            "nothing changed" if already else f"revoked {record.key_id}: {takes_effect()}")
    emit(as_json, {"key_id": record.key_id, "revoked": True, "already_revoked": already,
                   "revoked_at": clock.fmt(record.revoked_at)}, text)


@account_command(key, "rotate", "key_id")
@click.option("--overlap", type=click.IntRange(0, 30 * 86400), default=3600, show_default=True,
              help="Seconds the old key keeps working, while applications switch.")
@json_option
def key_rotate(account_id, key_id, overlap, as_json):
    """Issue a new key replacing KEY_ID; the old one is revoked after --overlap seconds."""
    plain, new, old = accounts.rotate_key(account_id, key_id, overlap)
    emit(as_json, {"key_id": new.key_id, "api_key": plain, "account_id": account_id,
                   "replaces": old.key_id, "old_key_revoked_at": clock.fmt(old.revoked_at)},
         f"key {new.key_id}: {plain}\n(shown once: store it now)\n"
         f"{old.key_id} keeps working until {clock.fmt(old.revoked_at)} UTC, then is revoked")


@main.group()
def whitelist():
    """IP whitelist of an account (empty: any address may use its keys)."""


def _show_whitelist(account_id, networks, as_json, changed=False):
    text = ("whitelist: " + ", ".join(networks)) if networks else (
        "whitelist cleared: any IP address may now use this account's keys" if changed
        else "whitelist: empty (any IP address may use this account's keys)")
    emit(as_json, {"account_id": account_id, "ip_whitelist": networks},
         text + (f"\n(the change {takes_effect()})" if changed else ""))


@account_command(whitelist, "set")
@click.argument("entries", nargs=-1)
@click.option("--allow-wide", is_flag=True,
              help="Accept ranges wider than /8 (IPv4) or /32 (IPv6), e.g. 0.0.0.0/0.")
@json_option
def whitelist_set(account_id, entries, allow_wide, as_json):
    """Replace the whitelist with ENTRIES (addresses or CIDR ranges, IPv4/IPv6; none: clear)."""
    _show_whitelist(account_id, accounts.set_whitelist(account_id, entries, allow_wide), as_json,
                    True)


@account_command(whitelist, "clear")
@json_option
def whitelist_clear(account_id, as_json):
    """Clear the whitelist: any IP address may then use the account's keys."""
    _show_whitelist(account_id, accounts.set_whitelist(account_id, []), as_json, True)


@account_command(whitelist, "show")
@json_option
def whitelist_show(account_id, as_json):
    """Show the whitelist of ACCOUNT_ID."""
    _show_whitelist(account_id, list(accounts.get_account(account_id).ip_whitelist or []),
                    as_json)


@main.group()
def device():
    """Devices (phones) that send for an account."""


@account_command(device, "register", "name")
@click.option("--sims", type=click.IntRange(1, 2), default=None,
              help="SIM slots the phone has (send_sms rejects other slots).")
@json_option
def device_register(account_id, name, sims, as_json):
    """Register a device called NAME; prints its id, uid and token (shown once)."""
    dev, token = devices.register(account_id, name, sims)
    emit(as_json, {"device_id": dev.device_id, "device_uid": dev.device_uid,
                   "device_token": token, "name": dev.name},
         f"device {dev.device_id}  uid {dev.device_uid}\ntoken (shown once): {token}")


@account_command(device, "list")
@json_option
def device_list(account_id, as_json):
    """List the devices of ACCOUNT_ID with their status."""
    rows = [devices.describe(d) for d in devices.list_devices(account_id)]
    emit(as_json, rows, "\n".join(
        f"{r['device_id']}  {r['device_uid']}  {r['name']}  {r['status']}  last seen "
        f"{r['last_seen'] or 'never'}" for r in rows) or "no devices")


@account_command(device, "remove", "device")
@json_option
def device_remove(account_id, device, as_json):
    """Remove DEVICE (its id or uid) and delete its queue."""
    dev = devices.remove(account_id, device)
    emit(as_json, {"device_id": dev.device_id, "device_uid": dev.device_uid, "removed": True},
         f"removed device {dev.device_id} ({dev.device_uid})")


# SMSGate's Android app as a phone (docs/android-app.md)
APP_STEPS = ("In the SMSGate app: Settings > Cloud server: API URL = server_url, Private token "
             "= private_token, Notification channel = SSE only; then Home > Cloud server on.")


def _public_url(url: str | None) -> str | None:
    """What the phone must reach: --url, else SMSGW_PUBLIC_URL, else the running local
    gateway's (its LAN address first, HTTPS when started with --tls)."""
    if url:
        return url.rstrip("/")
    if settings.current().public_url:
        return settings.current().public_url
    if LOCAL:
        return (LOCAL.get("lan_urls") or [LOCAL.get("url")])[0]
    return None


@account_command(device, "app-token")
@click.option("--name", default="", help="Name for the phone it pairs (default: the app's "
                                          "make and model).")
@click.option("--url", help="The gateway's public URL (default: SMSGW_PUBLIC_URL or the running "
                            "local gateway's).")
@click.option("--revoke", metavar="TOKEN", help="Revoke this private token instead.")
@json_option
def device_app_token(account_id, name, url, revoke, as_json):
    """A private token that pairs one SMSGate app phone with ACCOUNT_ID (shown once)."""
    from chalicelib.domain.devices import app_phones
    if revoke:
        app_phones.revoke_token(account_id, revoke)
        emit(as_json, {"revoked": True}, "revoked: no phone can register with it any more")
        return
    token = app_phones.make_token(account_id, name)
    base = _public_url(url)
    server_url = f"{base}/mobile/v1" if base else None
    data = {"account_id": account_id, "server_url": server_url, "private_token": token,
            "unused_expires_days": app_phones.UNUSED_DAYS, "steps": APP_STEPS}
    emit(as_json, data, f"server URL     {server_url or '(unknown: pass --url)'}\n"
                        f"private token  {token}   (shown once; pairs one phone; unused it "
                        f"expires in {app_phones.UNUSED_DAYS} days)\n{APP_STEPS}")


@main.group()
def webhook():
    """Webhook endpoints: signed event deliveries to an account's applications."""


def _webhooks():
    from chalicelib.domain import webhooks  # only the webhook commands need it
    return webhooks


def _delivery_log():
    from chalicelib.domain.webhooks import delivery_log
    return delivery_log


def _event_list(values) -> list[str]:
    return [name for value in values for name in value.split(",") if name.strip()]


@account_command(webhook, "add", "url")
@click.option("--events", "event_types", multiple=True,
              help="Event types to send (repeat or comma-separate); default: all.")
@click.option("--description", default="", help="A note to recognise the endpoint by.")
@json_option
def webhook_add(account_id, url, event_types, description, as_json):
    """Add an endpoint URL to ACCOUNT_ID; prints its id and signing secret (shown once)."""
    made = _webhooks().add(account_id, url, _event_list(event_types), description)
    emit(as_json, {"webhook_id": made.webhook_id, "secret": made.secret, "url": made.url,
                   "events": made.events, "account_id": account_id},
         f"webhook {made.webhook_id} -> {made.url}\nevents: {', '.join(made.events)}\n"
         f"secret (shown once): {made.secret}")


@account_command(webhook, "list")
@json_option
def webhook_list(account_id, as_json):
    """List the endpoints of ACCOUNT_ID with their status (enabled, failing, disabled)."""
    hooks = _webhooks()
    rows = [hooks.describe(w) for w in hooks.list_all(account_id)]
    emit(as_json, rows, "\n".join(
        f"{r['webhook_id']}  {r['status']}  {r['url']}  [{', '.join(r['events'])}]"
        + (f"\n    {r['disabled_reason']}" if r["disabled_reason"] else "")
        + (f"\n    failing since {r['failing_since']}: {r['last_error']}"
           if r["status"] == "failing" else "") for r in rows) or "no webhooks")


@account_command(webhook, "remove", "webhook_id")
@json_option
def webhook_remove(account_id, webhook_id, as_json):
    """Remove WEBHOOK_ID (queued deliveries to it are dropped)."""
    _webhooks().remove(account_id, webhook_id)
    emit(as_json, {"webhook_id": webhook_id, "removed": True}, f"removed {webhook_id}")


@account_command(webhook, "enable", "webhook_id")
@json_option
def webhook_enable(account_id, webhook_id, as_json):
    """Enable WEBHOOK_ID again (e.g. after it was disabled automatically)."""
    hooks = _webhooks()
    row = hooks.describe(hooks.set_enabled(account_id, webhook_id, True))
    emit(as_json, row, f"{webhook_id} enabled; `webhook redeliver {account_id} {webhook_id} "
                       "--since ...` sends what it missed")


@account_command(webhook, "disable", "webhook_id")
@json_option
def webhook_disable(account_id, webhook_id, as_json):
    """Disable WEBHOOK_ID: its events are logged `skipped`, not sent."""
    hooks = _webhooks()
    row = hooks.describe(hooks.set_enabled(account_id, webhook_id, False))
    emit(as_json, row, f"{webhook_id} disabled")


@account_command(webhook, "rotate-secret", "webhook_id")
@click.option("--overlap", type=click.IntRange(0, 7 * 86400), default=86400, show_default=True,
              help="Seconds the old secret keeps signing too (both signatures are sent).")
@json_option
def webhook_rotate(account_id, webhook_id, overlap, as_json):
    """Give WEBHOOK_ID a new secret (shown once); the old one also signs during --overlap."""
    rotated = _webhooks().rotate_secret(account_id, webhook_id, overlap)
    ends = clock.fmt(rotated.previous_until) if overlap else None
    emit(as_json, {"webhook_id": webhook_id, "secret": rotated.secret, "old_secret_until": ends},
         f"new secret (shown once): {rotated.secret}\n"
         + (f"the old secret also signs until {ends} UTC" if ends else "old secret dropped"))


@account_command(webhook, "test", "webhook_id")
@click.option("--wait", type=click.IntRange(0, 120), default=15, show_default=True,
              help="Seconds to wait for the outcome in the delivery log (0: do not wait).")
@json_option
def webhook_test(account_id, webhook_id, wait, as_json):
    """Send a `webhook.test` event to WEBHOOK_ID through the queue and show the outcome."""
    import time
    hooks = _webhooks()
    event_id = hooks.send_test(account_id, webhook_id)
    found, end = None, time.monotonic() + wait
    while wait and time.monotonic() < end:
        found = _delivery_log().delivery(webhook_id, event_id)
        if found is not None:
            break
        time.sleep(0.5)
    row = _delivery_row(found) if found else {"event_id": event_id, "state": "queued"}
    emit(as_json, row, _delivery_text(row))
    if found is not None and found.state != "delivered":
        sys.exit(1)


def _delivery_row(d) -> dict:
    return {"event_id": d.event_id, "type": d.type, "state": d.state, "attempts": d.attempts,
            "created_at": clock.fmt(d.created_at), "last_at": clock.fmt(d.last_at),
            "next_at": clock.fmt(d.next_at),
            "log": [{"at": clock.fmt(a.at), "status_code": a.status_code,
                     "latency_ms": a.latency_ms, "error": a.error} for a in d.log or []]}


def _delivery_text(row: dict) -> str:
    last = (row.get("log") or [{}])[-1]
    return (f"{row['event_id']}  {row.get('type', '')}  {row['state']}  attempts "
            f"{row.get('attempts', 0)}  last {row.get('last_at') or '-'}: "
            f"{last.get('status_code') or '-'} in {last.get('latency_ms', '-')} ms"
            + (f"  {last['error']}" if last.get("error") else "")
            + (f"  next try {row['next_at']}" if row.get("next_at") else ""))


@account_command(webhook, "deliveries", "webhook_id")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--state", type=click.Choice(["retrying", "delivered", "dead", "skipped"]),
              help="Only deliveries in this state (dead: retries ran out).")
@json_option
def webhook_deliveries(account_id, webhook_id, limit, state, as_json):
    """The delivery log of WEBHOOK_ID, newest first: every attempt's status code, latency and
    error."""
    rows = [_delivery_row(d) for d in _delivery_log().deliveries(account_id, webhook_id,
                                                                 limit, state)]
    emit(as_json, rows, "\n".join(_delivery_text(r) for r in rows) or "no deliveries")


def parse_since(text: str) -> int:
    """Epoch ms from 'YYYY-MM-DD HH:MM:SS' (UTC), epoch seconds, or an age like 30m, 6h, 2d."""
    from datetime import UTC, datetime
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[:-1].isdigit() and text[-1:] in units:
        return clock.now_ms() - int(text[:-1]) * units[text[-1]] * 1000
    if text.isdigit():
        return int(text) * 1000
    try:
        return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                   .timestamp() * 1000)
    except ValueError:
        raise click.BadParameter("use 'YYYY-MM-DD HH:MM:SS' (UTC), epoch seconds or an age "
                                 "such as 30m, 6h, 2d", param_hint="--since")


@account_command(webhook, "redeliver", "webhook_id")
@click.argument("event_id", required=False)
@click.option("--since", help="Every event whose delivery ended dead or skipped since this "
                              "time: 'YYYY-MM-DD HH:MM:SS' (UTC), epoch seconds, or 6h / 2d.")
@json_option
def webhook_redeliver(account_id, webhook_id, event_id, since, as_json):
    """Send EVENT_ID again to WEBHOOK_ID (same id and body), or all failed ones --since."""
    if bool(event_id) == bool(since):
        raise click.UsageError("give either EVENT_ID or --since")
    queued = _delivery_log().redeliver(account_id, webhook_id, event_id,
                                       parse_since(since) if since else None)
    emit(as_json, {"webhook_id": webhook_id, "queued": queued},
         f"queued {len(queued)} event(s) again" + "".join(f"\n  {e}" for e in queued))
@account_command(device, "pace", "device", context_settings={"ignore_unknown_options": True})
@click.argument("pace", required=False)
@click.option("--window", help="Parts per 30 minutes the phone may be handed, all SIMs and "
                               "OTPs counted (1-10000), 'none' for no window (its Android "
                               "limit was raised), or 'default'.")
@json_option
def device_pace(account_id, device, pace, window, as_json):
    """Set DEVICE's pacing (docs/pool.md): PACE, the SMS parts per hour each SIM may send
    (1-36000, or 'default'), and/or --window, the parts per 30 minutes for the whole phone."""
    given = {name: value for name, value in (("pace", pace), ("window", window))
             if value is not None}
    dev = pool.set_device_limits(account_id, device, **given)
    rate, parts = pool.pacing.pace_of(dev), pool.pacing.window_of(dev)
    emit(as_json, {"device_id": dev.device_id, "device_uid": dev.device_uid,
                   "pace_per_hour": rate or None, "default": dev.pace_per_hour is None,
                   "window_parts": parts or None, "window_default": dev.pace_window is None},
         f"device {dev.device_id}: " + (f"{rate} parts per hour per SIM" if rate
                                        else "no SIM rate")
         + (" (default)" if dev.pace_per_hour is None else "") + "; "
         + (f"{parts} parts per 30 min for the phone" if parts else "no window")
         + (" (default)" if dev.pace_window is None else ""))


@main.group()
def user():
    """Dashboard users (people who sign in to an account's /dashboard/)."""


url_option = click.option(
    "--url", envvar="SMSGW_PUBLIC_URL", default="", show_envvar=True,
    help="The gateway's base URL, for the printed link (e.g. https://ID.execute-api.REGION."
         "amazonaws.com/api).")


def _link(url: str, token: str) -> str:
    return f"{url.rstrip('/')}/dashboard/set-password?token={token}"


@account_command(user, "add", "email")
@click.option("--role", type=click.Choice(["owner", "developer", "viewer"]), default="owner",
              show_default=True, help="What the user may do in the dashboard (docs/dashboard.md, "
                                      "Team members).")
@url_option
@json_option
def user_add(account_id, email, role, url, as_json):
    """Add EMAIL as a user of ACCOUNT_ID; prints a one-time set-password link (24 h)."""
    from chalicelib.domain import users
    added, token = users.add(account_id, email, role=role)
    link = _link(url, token)
    emit(as_json, {"email": added.email, "account_id": account_id, "role": role,
                   "set_password_link": link, "expires_in_hours": users.LINK_HOURS},
         f"added {added.email} to {account_id} as {role}\nset-password link (once, within "
         f"{users.LINK_HOURS} h): {link}")


@user.command("link")
@click.argument("email")
@url_option
@json_option
def user_link(email, url, as_json):
    """A new set-password link for EMAIL (forgotten password); signs nobody out until used."""
    from chalicelib.domain import users
    link = _link(url, users.new_link(users.get(email)))
    emit(as_json, {"email": email.strip().lower(), "set_password_link": link,
                   "expires_in_hours": users.LINK_HOURS}, f"set-password link: {link}")


@account_command(user, "list")
@json_option
def user_list(account_id, as_json):
    """List the dashboard users of ACCOUNT_ID."""
    from chalicelib.domain import roles, users
    rows = [{"email": u.email, "role": roles.of(u), "created_at": clock.fmt(u.created_at),
             "password_set": u.password_hash is not None} for u in users.list_users(account_id)]
    emit(as_json, rows, "\n".join(f"{r['email']}  {r['role']}  created {r['created_at']}"
                                  + ("" if r["password_set"] else "  (no password yet)")
                                  for r in rows) or "no users")


@account_command(user, "remove", "email")
@json_option
def user_remove(account_id, email, as_json):
    """Remove EMAIL from ACCOUNT_ID and end all their sessions."""
    from chalicelib.domain import users
    removed = users.remove(account_id, email)
    emit(as_json, {"email": removed.email, "removed": True}, f"removed {removed.email}")


@main.group()
def operator():
    """The gateway's operators: the console at /dashboard/operator/ (docs/operator.md)."""


@operator.command("add")
@click.argument("email")
@url_option
@json_option
def operator_add(email, url, as_json):
    """Make EMAIL an operator (a new user in no account if EMAIL has none); prints a one-time
    set-password link when they have no password yet."""
    from chalicelib.domain import operators, users
    added, token = operators.grant(email)
    link = _link(url, token) if token else None
    emit(as_json, {"email": added.email, "operator": True, "set_password_link": link,
                   "expires_in_hours": users.LINK_HOURS if link else None},
         f"{added.email} is an operator\n" + (
             f"set-password link (once, within {users.LINK_HOURS} h): {link}" if link else
             "they sign in with their password; the console is at /dashboard/operator/"))


@operator.command("remove")
@click.argument("email")
@json_option
def operator_remove(email, as_json):
    """Take the operator role from EMAIL (a user in no account is removed)."""
    from chalicelib.domain import operators
    operators.revoke(email)
    emit(as_json, {"email": email.strip().lower(), "operator": False},
         f"{email.strip().lower()} is no longer an operator")


def _suspension(account_id, as_json, suspend: bool):
    from chalicelib.domain import operators
    changed = (operators.suspend if suspend else operators.resume)(operators.CLI, account_id)
    state = "suspended" if suspend else "active"
    emit(as_json, {"account_id": account_id, "state": state, "changed": changed},
         f"{account_id} is {state}" + ("" if changed else " (it already was)") + (
             "; for API keys and phones it " + takes_effect()
             if changed else ""))


@account_command(operator, "suspend")
@json_option
def operator_suspend(account_id, as_json):
    """Suspend ACCOUNT_ID: its keys, phones and dashboard are refused; nothing is deleted."""
    _suspension(account_id, as_json, True)


@account_command(operator, "resume")
@json_option
def operator_resume(account_id, as_json):
    """Resume a suspended ACCOUNT_ID."""
    _suspension(account_id, as_json, False)


@account_command(operator, "quota")
@click.argument("quota", required=False)
@click.argument("value", required=False)
@json_option
def operator_quota(account_id, quota, value, as_json):
    """Show ACCOUNT_ID's quotas, or set QUOTA (messages_per_day, phones, webhook_endpoints,
    api_requests_per_minute) to VALUE (0: no limit; default: the stage's)."""
    from chalicelib.domain import accounts, operators, quotas
    if quota is not None:
        if value is None:
            raise click.UsageError("give the quota's VALUE (a number, 0 or default)")
        operators.set_quota(operators.CLI, account_id, quota, value)
    rows = quotas.describe(accounts.get_account(account_id, consistent=True))
    emit(as_json, rows, "\n".join(
        f"{r['name']}: {r['limit'] or 'no limit'}" + ("" if r["own"] else " (stage default)")
        for r in rows))


@operator.command("log")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@json_option
def operator_log(limit, as_json):
    """The operators' audit log, newest first."""
    from chalicelib.domain import operators
    rows = operators.log(limit)
    emit(as_json, rows, "\n".join(
        f"{r['at']}  {r['operator']}  {r['action']}  {r['account_id'] or ''}  {r['detail'] or ''}"
        .rstrip() for r in rows) or "no operator actions yet")


@main.group("local")
def local_group():
    """The local gateway (./run-local) this CLI found."""


@local_group.command("env")
def local_env():
    """Print shell exports for the running local gateway's demo account:
    eval "$(.venv/bin/smsgw local env)" sets SMSGW_URL, API_KEY, ACCOUNT_ID, DEVICE_ID,
    DEVICE_UID, DEVICE_TOKEN, INBOX (the demo phone's inbox file), SMSGW_DATA (the data folder)
    and, when it serves HTTPS (--tls), SMSGW_CA (its CA certificate, for curl --cacert)."""
    import shlex

    from localgw.data import data_dir, read_json
    demo = read_json(data_dir() / "demo.json") if LOCAL else None
    if not demo:
        raise click.ClickException(NO_STAGE if not LOCAL else
                                   "the local gateway has no demo account")
    values = {"SMSGW_URL": LOCAL["url"], "API_KEY": demo["api_key"],
              "ACCOUNT_ID": demo["account_id"], "DEVICE_ID": demo["device_id"],
              "DEVICE_UID": demo["device_uid"], "DEVICE_TOKEN": demo["device_token"],
              "INBOX": str(data_dir() / "inbox.jsonl"), "SMSGW_DATA": str(data_dir())}
    if LOCAL.get("tls_ca"):
        values["SMSGW_CA"] = LOCAL["tls_ca"]
    click.echo("export " + " ".join(f"{k}={shlex.quote(str(v))}" for k, v in values.items()))


@local_group.command("sent")
@click.option("--last", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="How many of the newest SMS to show.")
@click.option("--code", is_flag=True,
              help="Print only the code of the newest OTP SMS the demo phone sent in the last "
                   "minute (waits up to 20 s for one).")
def local_sent(last, code):
    """The SMS the demo phone "sent" (they are also printed by ./run-local)."""
    import re
    import time

    from localgw.data import data_dir
    if not LOCAL:
        raise click.ClickException(NO_STAGE)
    ledger = data_dir() / "sent.jsonl"

    def read():
        try:
            return [json.loads(line) for line in ledger.read_text().splitlines() if line]
        except (OSError, ValueError):
            return []
    if not code:
        rows = read()[-last:]
        click.echo("\n".join(f"{time.strftime('%H:%M:%S', time.localtime(r['at']))}  SIM "
                              f"{r['sim_slot']} -> {r['phone_number']}: {r['message']}"
                              for r in rows) or "the demo phone has sent nothing yet")
        return
    deadline = time.time() + 20
    while True:
        for row in reversed(read()):
            found = re.search(r"\b(\d{4,10})\b", row["message"])
            if found and row["at"] >= time.time() - 60 and row.get("message_id"):
                click.echo(found.group(1))
                return
        if time.time() > deadline:
            raise click.ClickException("the demo phone sent no OTP in the last minute")
        time.sleep(0.3)


@main.group("opt-out")
def opt_out():
    """Numbers that opted out of an account's messages (replied STOP): sends to them are refused."""


@account_command(opt_out, "list")
@json_option
def opt_out_list(account_id, as_json):
    """List the numbers that opted out, newest first."""
    from chalicelib.domain import opt_outs
    found = [{"phone_number": e.phone_number, "source": e.source, "keyword": e.keyword,
              "changed_at": clock.fmt(e.changed_at)} for e in opt_outs.entries(account_id)]
    emit(as_json, found, "\n".join(
        f"{e['phone_number']}  {e['source']}{' ' + e['keyword'] if e['keyword'] else ''}  "
        f"{e['changed_at']} UTC" for e in found) or "no number has opted out")


def _opt_out_change(account_id, number, as_json, out):
    from chalicelib.domain import opt_outs, phone
    number = phone.normalise(number, "number")
    changed = (opt_outs.add if out else opt_outs.remove)(account_id, number)
    state = "listed (sends to it are refused)" if out else "off the list (it may be sent to)"
    emit(as_json, {"phone_number": number, "opted_out": out, "changed": changed},
         f"{number}: {state}" + ("" if changed else " already"))


for _name, _out, _help in (
        ("add", True, "List NUMBER: sends to it are refused until it replies START or is "
                      "removed."),
        ("remove", False, "Take NUMBER off the list (only if it asked to receive again).")):
    opt_out.command(_name, help=_help)(json_option(click.argument("account_id")(
        click.argument("number")(functools.partial(_opt_out_change, out=_out)))))


@main.command("create-tables")
def create_tables():
    """Create the stage's tables if missing (local use; AWS stages get them from the template)."""
    from chalicelib.storage import tables
    tables.create_all(wait=True)
    click.echo("tables ready")


if __name__ == "__main__":
    sys.exit(main())
