"""End-to-end encrypted jobs (SMSGate's format): the phone is the only place their number and
text are read. `$aes-256-cbc/pbkdf2-sha1$i=<iterations>$<salt b64>$<ciphertext b64>`, the key
PBKDF2-HMAC-SHA1(passphrase, salt, iterations, 32 bytes), the salt the CBC IV, PKCS#7 padding.
Uses the `cryptography` package (the agent's "e2e" extra), imported only for such a job."""
import base64
import binascii

ALGORITHM = "aes-256-cbc/pbkdf2-sha1"
MAX_ITERATIONS = 10_000_000


class CannotDecrypt(Exception):
    """Why an encrypted job cannot be sent (the agent reports it as the failure reason)."""


def decrypt(value: str, passphrase: str | None) -> str:
    if not passphrase:
        raise CannotDecrypt("End-to-end encrypted message, but this agent has no passphrase "
                            "(set e2e_passphrase): not sent.")
    try:
        _, algorithm, params, salt_b64, cipher_b64 = value.split("$")
        if algorithm != ALGORITHM:
            raise CannotDecrypt(f"Unsupported encryption {algorithm[:40]}: not sent.")
        iterations = int(dict(p.split("=", 1) for p in params.split(","))["i"])
        salt = base64.b64decode(salt_b64, validate=True)
        cipher = base64.b64decode(cipher_b64, validate=True)
    except (ValueError, KeyError, binascii.Error):
        raise CannotDecrypt("Encrypted message not in the $aes-256-cbc/pbkdf2-sha1$... "
                            "format: not sent.")
    if not 1 <= iterations <= MAX_ITERATIONS or len(salt) != 16:
        raise CannotDecrypt("Encrypted message with a bad iteration count or salt: not sent.")
    from cryptography.hazmat.primitives import hashes, padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
    key = PBKDF2HMAC(hashes.SHA1(), 32, salt, iterations).derive(passphrase.encode())
    decryptor = Cipher(algorithms.AES(key), modes.CBC(salt)).decryptor()
    try:
        padded = decryptor.update(cipher) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise CannotDecrypt("Cannot decrypt this message: wrong passphrase (or a damaged "
                            "ciphertext): not sent.")


def open_job(job: dict, passphrase: str | None) -> tuple[str, str]:
    """The (phone number, text) to send for a job, decrypting an encrypted one."""
    if not job.get("is_encrypted"):
        return job["phone_number"], job["message"]
    number = decrypt(job["phone_number"], passphrase).strip()
    if not number.lstrip("+").isdigit() or not 3 <= len(number.lstrip("+")) <= 16:
        raise CannotDecrypt("Decrypted recipient is not a phone number (wrong passphrase?): "
                            "not sent.")
    return number, decrypt(job["message"], passphrase)
