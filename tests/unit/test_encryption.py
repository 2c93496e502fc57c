"""End-to-end encryption's format (SMSGate's): the gateway's form check and segment bound, and the
agent's decryption, against SMSGate's own Python client's Encryptor (pycryptodome), so two
independent implementations agree."""
import sys
from pathlib import Path

import pytest
from android_sms_gateway import Encryptor
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core.errors import BadRequest
from chalicelib.domain import encryption
from chalicelib.domain.segments import count

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "agent"))
from smsgw_agent import e2e  # noqa: E402

FAST = Encryptor("passphrase", iterations=10)


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=400))
def test_the_segment_bound_never_undercounts(text):
    sealed = FAST.encrypt(text)
    bound = encryption.segments_bound(encryption.check(sealed, "text"))
    assert bound >= count(text).segments


@pytest.mark.parametrize("text", ["{" * 200, "😀" * 90, "é" * 150, "a" * 70 + "😀"])
def test_the_bound_holds_for_the_worst_alphabets(text):
    assert encryption.segments_bound(encryption.check(FAST.encrypt(text), "t")) >= \
        count(text).segments


@pytest.mark.parametrize("value, why", [
    ("hello", "form"),
    ("$aes-128-cbc/pbkdf2-sha1$i=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAA==",
     "algorithm"),
    ("$aes-256-cbc/pbkdf2-sha1$i=0$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAA==",
     "iteration"),
    ("$aes-256-cbc/pbkdf2-sha1$n=5$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAA==",
     "iteration"),
    ("$aes-256-cbc/pbkdf2-sha1$i=5$AAAA$AAAAAAAAAAAAAAAAAAAAAA==", "salt"),
    ("$aes-256-cbc/pbkdf2-sha1$i=5$AAAAAAAAAAAAAAAAAAAAAA==$AAAA", "blocks"),
    ("$aes-256-cbc/pbkdf2-sha1$i=5$AAAAAAAAAAAAAAAAAAAAAA==$not base64!", "base64"),
    (12, "string"),
])
def test_malformed_ciphertext_is_refused_saying_why(value, why):
    with pytest.raises(BadRequest) as caught:
        encryption.check(value, "textMessage.text")
    assert why in caught.value.message and caught.value.parameter == "textMessage.text"


def test_an_over_long_ciphertext_is_refused():
    with pytest.raises(BadRequest) as caught:
        encryption.check_text(FAST.encrypt("x" * 2000))
    assert "segments" in caught.value.message


def test_the_agent_decrypts_their_client_and_refuses_what_it_cannot():
    sealed = Encryptor("right").encrypt("Grüße 😀")
    assert e2e.decrypt(sealed, "right") == "Grüße 😀"
    for passphrase, why in [("wrong", "wrong passphrase"), (None, "no passphrase")]:
        with pytest.raises(e2e.CannotDecrypt) as caught:
            e2e.decrypt(sealed, passphrase)
        assert why in str(caught.value)
    with pytest.raises(e2e.CannotDecrypt):
        e2e.decrypt("$aes-256-cbc/pbkdf2-sha1$garbage", "right")
    job = {"is_encrypted": True, "phone_number": Encryptor("right").encrypt("+8801712000001"),
           "message": sealed}
    assert e2e.open_job(job, "right") == ("+8801712000001", "Grüße 😀")
    assert e2e.open_job({"phone_number": "+1", "message": "m"}, None) == ("+1", "m")
