"""Where webhooks may be sent. With WEBHOOKS_ALLOW_PRIVATE off (the default in production)
an endpoint must resolve to public addresses only: a URL pointing inside our own network
(the database, a cloud's metadata service) would let whoever configures webhooks reach it.

Checked when an endpoint is saved, and again on the address each send connects to, since
a name may resolve elsewhere by then.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext

SCHEMES = ("http", "https")


class RefusedAddress(OSError):
    """The host resolves to an address webhooks may not be sent to."""


def validate_webhook_url(url: str) -> None:
    """The model field's validator: http(s), and a public host unless private ones are allowed."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValidationError(gettext("Use an http:// or https:// URL."), code="scheme")
    if settings.WEBHOOKS_ALLOW_PRIVATE:
        return
    try:
        public_addresses(parts.hostname or "", None)
    except RefusedAddress as error:
        raise ValidationError(str(error)) from None


def public_addresses(host: str, port: int | None) -> list[tuple]:
    """`getaddrinfo`'s answers for the host, if every one is a public address."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise RefusedAddress(
            gettext("The host %(host)s cannot be resolved.") % {"host": repr(host)}
        ) from None
    for *_, sockaddr in answers:
        address = ipaddress.ip_address(sockaddr[0].split("%")[0])
        # ::ffff:10.0.0.1 is 10.0.0.1 (older Pythons call such an address global).
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise RefusedAddress(
                gettext(
                    "%(host)s resolves to %(address)s, a private, loopback or link-local "
                    "address: webhooks go to public addresses only "
                    "(WEBHOOKS_ALLOW_PRIVATE=1 allows it)."
                )
                % {"host": host, "address": address}
            )
    return answers


def connect_public(
    address: tuple[str, int], timeout: float, source_address: tuple | None = None
) -> socket.socket:
    """`socket.create_connection` for http.client, to a checked address only."""
    host, port = address
    error: OSError = RefusedAddress(gettext("No address for %(host)s.") % {"host": host})
    for family, kind, proto, _, sockaddr in public_addresses(host, port):
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock
        except OSError as failed:
            sock.close()
            error = failed
    raise error
