"""HTTPS for the local gateway on a LAN (`./run-local --host ADDR --tls`, docs/android-app.md).

Release builds of SMSGate's app refuse plain HTTP except to 127.0.0.1, and trust user-installed
CAs (its network_security_config.xml). So the gateway makes a local CA once (kept in the data
folder, `tls/ca.pem`; install it on the phone) and a server certificate for the addresses it
serves, signed by that CA, made again when the addresses change. Keys never leave the folder.
Made with the `cryptography` library.
"""
import datetime
import ipaddress
import os
import ssl
from pathlib import Path

CA_DAYS = 3650
CERT_DAYS = 397
CA_NAME = "smsgw local gateway CA"


def _names(hosts: list[str]):
    from cryptography import x509
    names = []
    for host in dict.fromkeys(hosts + ["127.0.0.1", "localhost"]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _write(path: Path, data: bytes) -> None:
    """Written to a new file born 0600 (a key is never readable by others, not even between
    its creation and a chmod), then renamed over the old one."""
    from localgw.data import create_private
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    with os.fdopen(create_private(temporary, os.O_WRONLY | os.O_EXCL), "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def _save_key(key, path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    _write(path, key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def _ca(folder: Path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    cert_path, key_path = folder / "ca.pem", folder / "ca-key.pem"
    if cert_path.exists() and key_path.exists():
        return (x509.load_pem_x509_certificate(cert_path.read_bytes()),
                serialization.load_pem_private_key(key_path.read_bytes(), None))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _save_key(key, key_path)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def ensure(folder: Path, hosts: list[str]) -> dict:
    """The CA and a server certificate for `hosts` under `folder` (made when missing or when
    the addresses changed): {"ca", "cert", "key"} paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from localgw.data import private_folder
    private_folder(folder)
    ca_cert, ca_key = _ca(folder)
    cert_path, key_path = folder / "server.pem", folder / "server-key.pem"
    wanted = _names(hosts)
    if cert_path.exists() and key_path.exists():
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        fresh = current.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + \
            datetime.timedelta(days=7)
        if set(san) == set(wanted) and fresh and current.issuer == ca_cert.subject:
            return {"ca": folder / "ca.pem", "cert": cert_path, "key": key_path}
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _save_key(key, key_path)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return {"ca": folder / "ca.pem", "cert": cert_path, "key": key_path}


def wrap(server, files: dict) -> None:
    """Serve HTTPS on an http.server socket (before it serves its first request)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(files["cert"]), str(files["key"]))
    # the handshake happens in the request's own thread, so a stalled client blocks no one
    server.socket = context.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)


def android_steps(ca_path: Path, server_url: str) -> str:
    return f"""HTTPS with a local CA (made once, kept): {ca_path}
On the Android phone (the SMSGate app trusts user CAs):
  1. copy {ca_path.name} to the phone (USB, e-mail to yourself, or a download);
  2. Settings > Security > Encryption & credentials > Install a certificate > CA certificate,
     pick the file (Android names it 'smsgw local gateway CA');
  3. in SMSGate: Settings > Cloud server > API URL {server_url}/mobile/v1
     (private token: .venv/bin/smsgw device app-token ACCOUNT_ID)."""
