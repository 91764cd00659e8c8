"""Does a Ray cluster answer? A TCP connect to its GCS port, with a timeout.

``ray.init`` has no connect timeout for a ``host:port`` address (seen: still retrying after 90 s
against a closed port, and a silent listener alike), so the Ray backend asks this first, and the
monitor asks it for runs queued on a cluster whose actor never started. No Ray import: cheap
enough for every listing.
"""

from __future__ import annotations

import socket

RAY_CLIENT_PORT = 10001  # ``ray://host`` without a port


def host_port(address: str | None) -> tuple[str, int] | None:
    """``(host, port)`` of ``host:port``, ``[v6]:port`` or ``ray://host[:port]``; None when the
    address names no port to try (``auto``, empty)."""
    if not address or address in ("auto", "local"):
        return None
    text, default = address, None
    if "://" in text:
        scheme, text = text.split("://", 1)
        default = RAY_CLIENT_PORT if scheme == "ray" else None
    text = text.split("/", 1)[0]
    host, sep, port = text.rpartition(":")
    if not sep or host.endswith(":"):  # no port (or a bare IPv6 address)
        host, port = text, default
    try:
        return host.strip("[]"), int(port)
    except (TypeError, ValueError):
        return None


def unreachable(address: str | None, timeout: float) -> str | None:
    """Why nothing answers at ``address`` within ``timeout`` seconds; None when it answers (or
    names no port to try)."""
    target = host_port(address)
    if target is None:
        return None
    try:
        with socket.create_connection(target, timeout=timeout):
            return None
    except socket.timeout:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)
