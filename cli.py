"""Admin command line: accounts, API keys, IP whitelists and devices.

Works the same against the local gateway and a deployed stage; it talks to the stage's tables
and queues directly, chosen by the environment:
  SMSGW_STAGE (table/queue names), AWS credentials and region as for any AWS tool, and
  AWS_ENDPOINT_URL for the local gateway's emulated AWS (printed when it starts).
"""
import json
import sys

import click

from chalicelib.core import clock
from chalicelib.core.errors import GatewayError
from chalicelib.domain import accounts, devices, pool


class Cli(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GatewayError as error:
            raise click.ClickException(error.message)


def emit(as_json: bool, data, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


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


@main.group()
def key():
    """API keys (64 characters, shown once at creation)."""


@key.command("create")
@click.argument("account_id")
@click.option("--label", default="", help="A note to recognise the key by.")
@json_option
def key_create(account_id, label, as_json):
    """Issue a new API key for ACCOUNT_ID."""
    plain, record = accounts.create_key(account_id, label)
    emit(as_json, {"key_id": record.key_id, "api_key": plain, "account_id": account_id},
         f"key {record.key_id}: {plain}\n(shown once: store it now)")


@key.command("list")
@click.argument("account_id")
@json_option
def key_list(account_id, as_json):
    """List the keys of ACCOUNT_ID (ids only; keys are never stored)."""
    rows = [{"key_id": k.key_id, "label": k.label, "created_at": clock.fmt(k.created_at),
             "revoked_at": clock.fmt(k.revoked_at)} for k in accounts.list_keys(account_id)]
    emit(as_json, rows, "\n".join(
        f"{r['key_id']}  {r['label'] or '-'}  created {r['created_at']}"
        + (f"  REVOKED {r['revoked_at']}" if r["revoked_at"] else "") for r in rows)
        or "no keys")


@key.command("revoke")
@click.argument("account_id")
@click.argument("key_id")
@json_option
def key_revoke(account_id, key_id, as_json):
    """Revoke KEY_ID of ACCOUNT_ID (warm gateways honour it within the auth cache time)."""
    record = accounts.revoke_key(account_id, key_id)
    emit(as_json, {"key_id": record.key_id, "revoked": True}, f"revoked {record.key_id}")


@main.group()
def whitelist():
    """IP whitelist of an account (empty: any address may use its keys)."""


@whitelist.command("set")
@click.argument("account_id")
@click.argument("entries", nargs=-1)
@click.option("--allow-wide", is_flag=True,
              help="Accept ranges wider than /8 (IPv4) or /32 (IPv6), e.g. 0.0.0.0/0.")
@json_option
def whitelist_set(account_id, entries, allow_wide, as_json):
    """Replace the whitelist with ENTRIES (addresses or CIDR ranges, IPv4/IPv6; none clears)."""
    networks = accounts.set_whitelist(account_id, entries, allow_wide)
    emit(as_json, {"account_id": account_id, "ip_whitelist": networks},
         "whitelist: " + (", ".join(networks) or "empty (any address)"))


@whitelist.command("show")
@click.argument("account_id")
@json_option
def whitelist_show(account_id, as_json):
    """Show the whitelist of ACCOUNT_ID."""
    networks = list(accounts.get_account(account_id).ip_whitelist or [])
    emit(as_json, {"account_id": account_id, "ip_whitelist": networks},
         "whitelist: " + (", ".join(networks) or "empty (any address)"))


@main.group()
def device():
    """Devices (phones) that send for an account."""


@device.command("register")
@click.argument("account_id")
@click.argument("name")
@click.option("--sims", type=click.IntRange(1, 2), default=None,
              help="SIM slots the phone has (send_sms rejects other slots).")
@json_option
def device_register(account_id, name, sims, as_json):
    """Register a device called NAME; prints its id, uid and token (shown once)."""
    dev, token = devices.register(account_id, name, sims)
    emit(as_json, {"device_id": dev.device_id, "device_uid": dev.device_uid,
                   "device_token": token, "name": dev.name},
         f"device {dev.device_id}  uid {dev.device_uid}\ntoken (shown once): {token}")


@device.command("list")
@click.argument("account_id")
@json_option
def device_list(account_id, as_json):
    """List the devices of ACCOUNT_ID with their status."""
    rows = [devices.describe(d) for d in devices.list_devices(account_id)]
    emit(as_json, rows, "\n".join(
        f"{r['device_id']}  {r['device_uid']}  {r['name']}  {r['status']}  last seen "
        f"{r['last_seen'] or 'never'}" for r in rows) or "no devices")


@device.command("remove")
@click.argument("account_id")
@click.argument("device")
@json_option
def device_remove(account_id, device, as_json):
    """Remove DEVICE (its id or uid) and delete its queue."""
    dev = devices.remove(account_id, device)
    emit(as_json, {"device_id": dev.device_id, "device_uid": dev.device_uid, "removed": True},
         f"removed device {dev.device_id} ({dev.device_uid})")


@device.command("pace", context_settings={"ignore_unknown_options": True})
@click.argument("account_id")
@click.argument("device")
@click.argument("pace")
@json_option
def device_pace(account_id, device, pace, as_json):
    """Set how many SMS segments per hour each SIM of DEVICE may send (PACE, 1-36000), or
    'default' for the gateway's default (docs/pool.md)."""
    dev = pool.set_device_pace(account_id, device, pace)
    shown = pool.pacing.pace_of(dev) or None
    emit(as_json, {"device_id": dev.device_id, "device_uid": dev.device_uid,
                   "pace_per_hour": shown, "default": dev.pace_per_hour is None},
         f"device {dev.device_id}: {shown or 'unpaced'} segments per hour per SIM"
         + (" (default)" if dev.pace_per_hour is None else ""))


@main.command("create-tables")
def create_tables():
    """Create the stage's tables if missing (local use; AWS stages get them from the template)."""
    from chalicelib.storage import tables
    tables.create_all(wait=True)
    click.echo("tables ready")


if __name__ == "__main__":
    sys.exit(main())
