"""Which webhook URLs the gateway may call, checked when an endpoint is added and again before
every request (a name that resolved to a public address at `add` may resolve to 127.0.0.1 or
169.254.169.254 later: DNS rebinding).

On AWS stages a receiver must be `https` and every address its name resolves to must be a
global unicast address: no private, loopback, link-local (instance metadata), CGNAT, multicast,
reserved or unspecified ones, IPv4-mapped and 6to4 IPv6 included. The request then goes to the
very address that was checked (see webhook_sender), so a second DNS answer cannot slip in.
The local gateway allows `http` (settings' webhook_allow_http) and local receivers
(webhook_allow_private); listening beyond loopback, it refuses local receivers unless
its owner opts in: anyone with an account on that network could otherwise make it POST to the
AWS emulator on 127.0.0.1, which asks for no signature.
"""
import ipaddress
import socket
from urllib.parse import quote, urlsplit

from chalicelib.core import settings
from chalicelib.core.errors import BadRequest

MAX_URL = 2048
PRINTABLE_ASCII = "".join(map(chr, range(33, 127)))


class Refused(Exception):
    """This URL may not be called (the message says why)."""


def parse(url: str):
    """(scheme, host, port, path_with_query) of a well-formed webhook URL, else BadRequest."""
    text = (url or "").strip()
    if not text or len(text) > MAX_URL or any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise BadRequest(f"Invalid url: an absolute http(s) URL of at most {MAX_URL} "
                         "characters without spaces.", "url")
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http"):
        raise BadRequest("Invalid url: the scheme must be https.", "url")
    if parts.username is not None or parts.password is not None:
        raise BadRequest("Invalid url: credentials in the URL are not allowed.", "url")
    if parts.fragment:
        raise BadRequest("Invalid url: no #fragment.", "url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadRequest("Invalid url: bad port.", "url")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise BadRequest("Invalid url: no host.", "url")
    try:  # sent as ASCII (http.client would raise at every attempt): IDNA host, %-encoded path
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise BadRequest("Invalid url: the host name is not a valid domain name.", "url")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port, quote(path, safe=PRINTABLE_ASCII)


# IANA's special-purpose address registries (iana.org/assignments/iana-ipv4-special-registry,
# iana-ipv6-special-registry), for the blocks Python's ipaddress still calls global: the whole
# IETF protocol block (192.0.0.8 included; its anycast .9 and .10 are no webhook receivers),
# the 6to4 relay, AS112 and AMT anycast, and IPv6's NAT64 (which names an IPv4 host),
# documentation, SRv6 and dummy prefixes.
SPECIAL_PURPOSE = tuple(ipaddress.ip_network(block) for block in (
    "192.0.0.0/24", "192.88.99.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.175.48.0/24",
    "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "100:0:0:1::/64", "2001::/23",
    "2001:db8::/32", "3fff::/20", "5f00::/16", "2620:4f:8000::/48"))


def _blocked(address: ipaddress._BaseAddress) -> str | None:
    if any(address in block for block in SPECIAL_PURPOSE if block.version == address.version):
        return "a special-purpose (IANA registry)"
    if isinstance(address, ipaddress.IPv6Address):
        # 6to4 (2002::/16) names the IPv4 host that receives it; Python calls it global
        if address.sixtofour and _blocked(address.sixtofour):
            return f"a 6to4 ({_blocked(address.sixtofour)} IPv4)"
        address = address.ipv4_mapped or address
    for test, what in ((address.is_loopback, "a loopback"), (address.is_link_local,
                       "a link-local (instance metadata)"), (address.is_private, "a private"),
                       (address.is_multicast, "a multicast"), (address.is_unspecified,
                       "an unspecified"), (address.is_reserved, "a reserved")):
        if test:
            return what
    if not address.is_global:
        return "a non-public"
    return None


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host).compressed]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"cannot resolve {host}: {exc}")
    return sorted({str(info[4][0]) for info in infos})


def check(url: str, allow_private: bool | None = None) -> tuple[tuple, str]:
    """Resolve and check `url`; returns (parse(url), the address to connect to) or raises
    Refused (nothing is sent). Called at `add` and before every attempt."""
    allow = settings.current().webhook_allow_private if allow_private is None else allow_private
    scheme, host, port, path = parse(url)
    if scheme != "https" and not (allow or settings.current().webhook_allow_http):
        raise Refused("the URL must be https")
    addresses = resolve(host, port)
    if not addresses:
        raise Refused(f"{host} resolves to no address")
    if not allow:
        for text in addresses:
            what = _blocked(ipaddress.ip_address(text.split("%", 1)[0]))
            if what:
                raise Refused(f"{host} resolves to {what} address ({text})")
    # IPv4 first: Lambda functions outside a VPC have no IPv6 egress.
    return (scheme, host, port, path), min(addresses, key=lambda a: (":" in a, a))
