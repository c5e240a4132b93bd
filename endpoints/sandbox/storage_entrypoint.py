"""The storage-initializer container's command, as the sandbox runs it.

Executed by the interpreter of the kserve-storage virtualenv (``storage_initializer.py``), never
imported by the sandbox. It behaves like the ``initializer-entrypoint`` script of KServe's
storage-initializer image from 0.17 on: arguments are pairs of source URI and destination
directory; ``kserve_storage.Storage.download_files`` fetches them; a ``RuntimeError`` is logged
as "Storage initialization failed: …", anything else as "Unexpected error during storage
initialization: …", and the exit code is 1.

The sandbox's one addition is its network: only loopback is reachable. Connections and name
lookups for anything else fail as an unreachable network would, so nothing KServe's code or its
libraries try (an instance-metadata credential probe, a public bucket) leaves the machine.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _guard_network() -> None:
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def allowed(sock: socket.socket, address: object) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True
        return isinstance(address, tuple) and bool(address) and is_loopback(address[0])

    def connect(self, address):
        if not allowed(self, address):
            raise OSError(errno.ENETUNREACH, "Network is unreachable (sandbox: only loopback is reachable)")
        return original_connect(self, address)

    def connect_ex(self, address):
        if not allowed(self, address):
            return errno.ENETUNREACH
        return original_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not is_loopback(host.decode() if isinstance(host, bytes) else host):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return original_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo


if __name__ in ("__main__", "__mp_main__"):  # the script (and workers started by spawn), not an import
    _guard_network()


def main(argv: list[str]) -> int:
    from kserve_storage import Storage
    from kserve_storage.logging import configure_logging, logger

    configure_logging()
    if len(argv) < 2 or len(argv) % 2:
        print("Usage: initializer-entrypoint src_uri_0 dest_path_0 ... src_uri_n dest_path_n")
        return 1
    sources, destinations = argv[0::2], argv[1::2]
    logger.info("Initializing, args: (src_uri, dest_path): %s", list(zip(sources, destinations, strict=True)))
    for destination in destinations:
        os.makedirs(destination, exist_ok=True)
    try:
        Storage.download_files(sources, destinations)
    except RuntimeError as exc:
        logger.error("Storage initialization failed: %s", exc)
        return 1
    except Exception as exc:  # noqa: BLE001 - the image's script reports every failure this way
        logger.error("Unexpected error during storage initialization: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
