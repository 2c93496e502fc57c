"""End-to-end encryption for `Client.send(..., passphrase=...)`: SMSGate's format, which our agent
and SMSGate's app decrypt on the phone. The gateway never sees the passphrase.
`$aes-256-cbc/pbkdf2-sha1$i=<iterations>$<salt b64>$<ciphertext b64>`: the key is
PBKDF2-HMAC-SHA1(passphrase, salt, iterations, 32 bytes), the random 16-byte salt is the CBC IV,
PKCS#7 padding. Needs the `cryptography` package (the "e2e" extra)."""
import base64
import os

ITERATIONS = 75_000  # SMSGate's clients' default


def seal(text: str, passphrase: str, iterations: int = ITERATIONS) -> str:
    from cryptography.hazmat.primitives import hashes, padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
    salt = os.urandom(16)
    key = PBKDF2HMAC(hashes.SHA1(), 32, salt, iterations).derive(passphrase.encode())
    padder = padding.PKCS7(128).padder()
    padded = padder.update(text.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(salt)).encryptor()
    sealed = encryptor.update(padded) + encryptor.finalize()
    return (f"$aes-256-cbc/pbkdf2-sha1$i={iterations}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(sealed).decode()}")
