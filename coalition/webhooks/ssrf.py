"""Where a webhook may go: http(s) only, never to a loopback, private, link-local or multicast address.

Checked when an endpoint is registered and again before every delivery, on the addresses the
name resolves to then (a name may be re-pointed after registration). Hosts named in
``COALITION_WEBHOOK_ALLOWED_HOSTS`` (local development, tests) skip the address check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

from coalition.webhooks.errors import InvalidWebhookUrl, UrlNotAllowed

MAX_URL_LENGTH = 2048


def parse(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an absolute http(s) URL, else INVALID_URL."""
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidWebhookUrl(f"url must be an absolute http(s) URL of at most {MAX_URL_LENGTH} characters",
                                field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidWebhookUrl("url is not a valid URL", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhookUrl("url must start with http:// or https:// and name a host", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("url must not carry a user name or password", field="url")
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def forbidden_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address inside an IPv6 one (::ffff:a.b.c.d, 6to4 2002:aabb:ccdd::, Teredo) is judged as
        # the IPv4 address it reaches.
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if any(inner is not None and forbidden_address(str(inner)) for inner in embedded):
            return True
        if ip.ipv4_mapped is not None:
            return False
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def check_url(url: str, allowed_hosts: Collection[str]) -> str | None:
    """Raise INVALID_URL or URL_NOT_ALLOWED unless ``url`` may receive webhooks now.

    Returns the checked address to connect to (None for an allowed host: connect by name), so the
    request cannot meet a different answer from a second DNS lookup (DNS rebinding).
    """
    _, host, port = parse(url)
    if host in allowed_hosts or host.strip("[]") in allowed_hosts:
        return None
    try:
        addresses = await resolve(host.strip("[]"), port)
    except (OSError, UnicodeError):
        raise UrlNotAllowed(f"the host {host[:100]} does not resolve", field="url") from None
    if not addresses or any(forbidden_address(a) for a in addresses):
        raise UrlNotAllowed(f"the host {host[:100]} resolves to a loopback, private, link-local or multicast "
                            "address; webhooks go to public addresses only", field="url")
    return addresses[0]


def pinned(url: str, address: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """``url`` with its host replaced by the checked ``address``; the Host header and (for https) the
    TLS server name, which the certificate is checked against, stay the original host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if ":" in address else address
    netloc = literal + (f":{parts.port}" if parts.port else "")
    host_header = parts.netloc.rsplit("@", 1)[-1]
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return parts._replace(netloc=netloc).geturl(), {"Host": host_header}, extensions
