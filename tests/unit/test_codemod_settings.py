"""scripts/codemod_settings.py: the old module-constant reads and test patches rewritten to the
frozen settings, and none left in the repository (branches merged later: run the script)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import codemod_settings  # noqa: E402

OLD = '''from chalicelib.core import settings


@pytest.fixture
def local(monkeypatch):
    monkeypatch.setattr(settings, "WEBHOOK_ALLOW_PRIVATE", True)
    monkeypatch.setattr(settings, "WEBHOOK_CACHE_SECONDS", 0)  # at once


def test_x(aws_mock, monkeypatch):
    monkeypatch.setattr(settings, "LEASE_SECONDS", f(1))  # a (comment)
    monkeypatch.setenv("X", "1")
    assert settings.LEASE_SECONDS == 1 and settings.TABLES
    assert settings.table_name("x")
    assert settings.signup_mode() == "open" and settings.mail_dir()
    settings.PUBLIC_URL = "https://x"
'''
NEW = '''from chalicelib.core import settings


@pytest.fixture
def local(settings_override):
    settings_override(webhook_allow_private=True, webhook_cache_seconds=0)  # at once


def test_x(aws_mock, monkeypatch, settings_override):
    settings_override(lease_seconds=f(1))  # a (comment)
    monkeypatch.setenv("X", "1")
    assert settings.current().lease_seconds == 1 and settings.TABLES
    assert settings.current().table_name("x")
    assert settings.current().signup == "open" and settings.current().mail_dir
    settings.install(settings.current().replace(public_url="https://x"))
'''


def test_old_reads_and_patches_are_rewritten():
    assert codemod_settings.rewrite(OLD) == (NEW, [])
    assert codemod_settings.rewrite(NEW) == (NEW, [])  # twice: nothing more
    aliased = "from chalicelib.core import settings as gw\nx = gw.MAX_ATTEMPTS\n"
    assert codemod_settings.rewrite(aliased)[0].endswith("x = gw.current().max_attempts\n")


def test_long_lines_wrap_after_a_comma_under_their_bracket():
    line = ("    value = compute(first_argument_name, settings.current().outbox_grace_seconds, "
            "third_argument)  # why")
    assert codemod_settings.wrap(line) == [
        "    value = compute(first_argument_name, settings.current().outbox_grace_seconds,",
        "                    third_argument)  # why"]


def test_no_old_style_read_is_left():
    ran = subprocess.run([sys.executable, "scripts/codemod_settings.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout
