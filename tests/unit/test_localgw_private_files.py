"""Files of the local data folder are born 0600 and folders 0700 (issue 30, item 2), whatever
the umask, with no chmod after the fact (a reader could open a file between its creation and a
chmod): os.chmod is made to fail while they are written. Before, the TLS key was written with
the umask's mode and chmod'ed after, and snapshot.json and the mails kept the umask's 0644.
tests/e2e/test_local_data_at_rest.py checks a whole folder after real runs."""
import os
import stat
from pathlib import Path

import pytest


@pytest.fixture
def no_chmod(monkeypatch):
    old = os.umask(0o022)

    def refused(*args, **kwargs):
        raise AssertionError("chmod after the fact")
    monkeypatch.setattr(os, "chmod", refused)
    monkeypatch.setattr(Path, "chmod", refused)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_tls_material_snapshot_state_and_lock_are_born_private(tmp_path, no_chmod):
    from localgw import snapshot, tls
    from localgw.data import DataDir
    folder = DataDir(tmp_path / "data")
    try:
        files = tls.ensure(folder.path / "tls", ["127.0.0.1"])
        folder.remember(otp_secret="x")
        folder.announce({"url": "http://127.0.0.1:1"})
        snapshot.save(str(folder.path), {"format": snapshot.FORMAT, "tables": {}})
        assert mode(folder.path) == mode(folder.path / "tls") == 0o700
        for path in [*files.values(), folder.path / "tls" / "ca-key.pem", folder.path / "lock",
                     folder.path / "config.json", folder.path / "gateway.json",
                     folder.path / "snapshot.json"]:
            assert mode(path) == 0o600, path
        files = tls.ensure(folder.path / "tls", ["127.0.0.2"])  # new addresses: a new key
        assert mode(files["key"]) == mode(files["cert"]) == 0o600
    finally:
        folder.close()


def test_an_alert_mail_file_is_born_private(tmp_path, no_chmod, settings_override):
    from chalicelib.domain.insight import alerts
    settings_override(alert_sender="", mail_dir=str(tmp_path / "mail"))
    alerts.deliver("owner@example.com", "[smsgw] test", "body", "https://x/unsubscribe/t")
    [mail] = (tmp_path / "mail").glob("*.eml")
    assert mode(tmp_path / "mail") == 0o700 and mode(mail) == 0o600


def test_an_older_open_folder_is_narrowed(tmp_path):
    from localgw.data import DataDir
    (tmp_path / "old").mkdir(mode=0o755)
    os.chmod(tmp_path / "old", 0o755)
    DataDir(tmp_path / "old").close()
    assert mode(tmp_path / "old") == 0o700
