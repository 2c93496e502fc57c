"""The gateway's settings (issue 32, item 3): one frozen object read from the environment once,
every value checked, and a bad one stops the start with the variable's name: the Lambda's import,
the CLI and the local gateway (these two with a one-line message, no traceback)."""
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.core import settings
from chalicelib.core.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_the_defaults_without_any_variable():
    read = Settings.from_environ({})
    assert (read.stage, read.prefix, read.region) == ("dev", "smsgw-dev", "us-east-1")
    assert read.lease_seconds == 60 and read.heartbeat_seconds == 120 // 3
    assert read.signup == "closed" and read.webhook_allow_private is False
    assert read.mail_language == "en"
    assert read.table_name("messages") == "smsgw-dev-messages"
    assert read.queue_name("abc") == "smsgw-dev-device-abc"
    assert read.webhook_queue_name(dead_letter=True) == "smsgw-dev-webhooks-dlq"
    assert read.events_stream_placeholder.startswith("arn:aws:dynamodb:us-east-1:")


def test_derived_defaults_follow_what_they_derive_from():
    read = Settings.from_environ({"SMSGW_STAGE": "local", "SMSGW_HEARTBEAT_WINDOW_SECONDS": "2",
                                  "AWS_REGION": "eu-west-1", "SMSGW_SIGNUP": " Open ",
                                  "SMSGW_PUBLIC_URL": "https://sms.example.com/"})
    assert read.prefix == "smsgw-local" and read.webhook_allow_private is True
    assert read.heartbeat_seconds == 1  # a third of 2 s, but at least 1
    assert read.region == "eu-west-1" and read.signup == "open"
    assert read.public_url == "https://sms.example.com"
    assert Settings.from_environ({"SMSGW_MAIL_LANGUAGE": " EN "}).mail_language == "en"
    blank = Settings.from_environ({"SMSGW_LEASE_SECONDS": " ", "SMSGW_SIGNUP": ""})
    assert blank.lease_seconds == 60 and blank.signup == "closed"  # blank: the default


@pytest.mark.parametrize("name, value, says", [
    ("SMSGW_LEASE_SECONDS", "abc", "a whole number of seconds from 1 to 43200"),
    ("SMSGW_LEASE_SECONDS", "0", "a whole number of seconds from 1 to 43200"),
    ("SMSGW_MAX_ATTEMPTS", "2.5", "a whole number of attempts ≥ 1"),
    ("SMSGW_HEARTBEAT_SECONDS", "0", "≥ 1"),  # was raised to 1 silently
    ("SMSGW_DEVICE_CREDENTIALS_SECONDS", "7200", "from 900 to 3600"),  # was lowered silently
    ("SMSGW_POOL_BACKLOG_SECONDS", "30", "≥ 60"),  # was raised silently
    ("SMSGW_PACE_WINDOW_PARTS", "-1", "from 0 to 10000"),
    ("SMSGW_WEBHOOK_TIMEOUT_SECONDS", "30", "above 0 and at most 10"),  # was lowered silently
    ("SMSGW_WEBHOOK_RETRY_SCALE", "nan", "above 0"),
    ("SMSGW_WEBHOOK_ALLOW_PRIVATE", "maybe", "one of 1, true, yes, on, 0, false, no, off"),
    ("SMSGW_SIGNUP", "wide", "one of closed, invite, open"),  # was `closed` silently
    ("SMSGW_STAGE", "my stage", "letters, digits, '-' or '_'"),
    ("SMSGW_DEFAULT_REGION", "Bangladesh", "a two-letter region code"),
    ("SMSGW_PUBLIC_URL", "sms.example.com", "an http:// or https:// URL"),
    ("SMSGW_DEVICE_ROLE_ARN", "DeviceRole", "an IAM role ARN"),
    ("SMSGW_ALERT_SENDER", "alerts", "an e-mail address"),
    ("SMSGW_MAIL_LANGUAGE", "fr", "one of en"),  # no catalog: was English silently
])
def test_a_bad_value_is_refused_naming_the_variable(name, value, says):
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ({name: value})
    assert str(refused.value).startswith(f"{name} must be ") and says in str(refused.value)
    assert str(refused.value).endswith(f"got {value!r}")


def test_every_bad_variable_is_named_at_once():
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ({"SMSGW_LEASE_SECONDS": "x", "SMSGW_OTP_MAX_TRIES": "0"})
    assert "SMSGW_LEASE_SECONDS must be" in str(refused.value)
    assert "SMSGW_OTP_MAX_TRIES must be" in str(refused.value)


def test_the_object_is_frozen_and_read_once(settings_override):
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.current().lease_seconds = 5
    assert settings.current() is settings.current()
    changed = settings_override(lease_seconds=5)
    assert settings.current() is changed and changed.lease_seconds == 5
    with pytest.raises(TypeError):  # a field that does not exist
        settings_override(lease_secs=5)


def test_the_reference_lists_every_variable():
    reference = (ROOT / "docs" / "settings.md").read_text()
    for f in dataclasses.fields(Settings):
        if f.metadata["env"]:
            assert f"`{f.metadata['env']}`" in reference, f.metadata["env"]


def test_the_mail_languages_are_the_catalogs():
    """core cannot import the domain's catalogs, so it names their languages itself."""
    from chalicelib.domain import account_mails
    assert tuple(account_mails.CATALOGS) == settings.MAIL_LANGUAGES


def test_the_account_mails_speak_the_set_language(settings_override, monkeypatch):
    from chalicelib.domain import account_mails
    monkeypatch.setitem(account_mails.CATALOGS, "fr", {  # as a translator would add it
        "verify": ("Vérifiez votre adresse", "Bonjour {account_name}"),
        "signup_hint_open": "Créez"})
    settings_override(mail_language="fr")
    assert account_mails.compose("verify", account_name="Acme") == (
        "Vérifiez votre adresse", "Bonjour Acme")
    assert account_mails.text("signup_hint_open") == "Créez"
    settings_override(mail_language="en")
    assert account_mails.compose("verify", account_name="Acme", base_url="u", hours=1,
                                 link="l")[0].startswith("Verify your email")


# --- a bad variable stops each start ----------------------------------------------------------

def _run(args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          env=clean | {"SMSGW_STAGE": "test"} | env, timeout=60)


def test_the_local_gateway_does_not_start_with_a_bad_variable(tmp_path):
    ran = _run(["local_gateway.py", "--memory", "--no-agent", "--port", "0"],
               SMSGW_LEASE_SECONDS="abc", SMSGW_DATA=str(tmp_path))
    assert ran.returncode != 0 and "Traceback" not in ran.stderr
    assert ran.stderr.strip() == ("Error: SMSGW_LEASE_SECONDS must be a whole number of seconds "
                                  "from 1 to 43200, got 'abc'")


def test_the_cli_does_not_start_with_a_bad_variable():
    ran = _run(["cli.py", "account", "--help"], SMSGW_SIGNUP="wide")
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert ran.stderr.strip() == ("Error: SMSGW_SIGNUP must be one of closed, invite, open, "
                                  "got 'wide'")


def test_the_lambda_import_fails_naming_the_variable():
    ran = _run(["-c", "import app"], SMSGW_MAX_ATTEMPTS="many")
    assert ran.returncode != 0
    assert ran.stderr.strip().splitlines()[-1] == (
        "chalicelib.core.settings.SettingsError: SMSGW_MAX_ATTEMPTS must be a whole number of "
        "attempts ≥ 1, got 'many'")
