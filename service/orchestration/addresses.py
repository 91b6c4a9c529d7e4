"""Ray addresses: their forms, and whether anything answers there, checked before a sweep starts.

A sweep (or a submission) names a Ray cluster as ``HOST:PORT``, ``ray://HOST:PORT`` or
``http(s)://HOST:PORT``; :func:`check_address` fails at once, naming the address, when nothing
listens there, instead of letting Ray wait minutes for it.
"""

from __future__ import annotations

import socket
import urllib.parse

from service.errors import RayAddressError

__all__ = ["GCS_PORT", "JOBS_PORT", "check_address", "free_port", "free_ports"]

GCS_PORT = 6379  # a cluster's address for `ray.init` (and `ray start --address`)
JOBS_PORT = 8265  # a cluster's job server (and dashboard)
_ADDRESS_TIMEOUT_S = 3.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (another process may take it
    before the caller binds it)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now.

    The probes stay bound until all are taken: calling :func:`free_port` ``count`` times can
    hand out the same port twice (the kernel is free to reuse a port once its probe closed),
    and a Ray given one port for two components refuses to start ("trying to use a port
    number that is used by other components").
    """
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def check_address(address: str, default_port: int) -> tuple[str, int]:
    """The (host, port) of a Ray address, after checking that something listens there.

    Accepts ``HOST:PORT``, ``ray://HOST:PORT`` and ``http(s)://HOST:PORT``; raises
    RayAddressError at once when nothing answers within a few seconds.
    """
    text = address.strip()
    parsed = urllib.parse.urlsplit(text if "://" in text else f"tcp://{text}")
    try:
        host, port = parsed.hostname, parsed.port or default_port
    except ValueError:
        host, port = None, 0
    if not host:
        raise RayAddressError(f"Ray address {address!r}: expected HOST:PORT or a URL")
    try:
        with socket.create_connection((host, port), timeout=_ADDRESS_TIMEOUT_S):
            pass
    except OSError as exc:
        raise RayAddressError(
            f"Ray address {address!r}: nothing answers at {host}:{port} "
            f"({exc.strerror or exc}); is the Ray head running?"
        ) from None
    return host, port
