"""``python manage.py ingest_receiver``: the ingest receivers in a process of their own
(``audit.receiver``: aiohttp, bodies read asynchronously within a deadline, database work in a
small thread pool). Point the payload loggers (``CONSOLE_INGEST_BASE_URL``) and the Kubernetes
audit webhook at it. SIGTERM/SIGINT stop it after the requests in flight."""

from __future__ import annotations

import contextlib
import logging
import os
import signal

from django.core.management.base import BaseCommand, CommandError

from audit import receiver


def _bind(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"--bind must be HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class Command(BaseCommand):
    requires_system_checks = []  # a receiver restarts fast; `manage.py check` runs with the web process
    help = "Serve the ingest receivers (payload logger, Kubernetes audit webhook) on an asynchronous server."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8002", help="HOST:PORT to listen on (default 127.0.0.1:8002).")
        parser.add_argument("--threads", type=int, default=16,
                            help="Threads for the database work of complete deliveries (default 16).")
        parser.add_argument("--processes", type=int, default=1,
                            help="Processes sharing the port (SO_REUSEPORT), one event loop each: one per core "
                                 "for a receiver that has the machine to itself (default 1).")

    def handle(self, *args, **options):
        host, port = _bind(options["bind"])
        if options["threads"] < 1:
            raise CommandError("--threads must be at least 1")
        logging.getLogger("audit.receiver").setLevel(logging.INFO)
        processes = options["processes"]
        if processes < 1:
            raise CommandError("--processes must be at least 1")
        self.stdout.write(f"ingest receiver listening on {host}:{port} ({processes} process(es))", ending="\n")
        self.stdout.flush()
        if processes == 1:
            receiver.serve(host=host, port=port, threads=options["threads"])
            return
        # The children open their own database connections (none is open yet: no system checks).
        children = []
        for _ in range(processes):
            pid = os.fork()
            if pid == 0:
                try:
                    receiver.serve(host=host, port=port, threads=options["threads"], reuse_port=True)
                finally:
                    os._exit(0)
            children.append(pid)

        def forward(signum, frame):
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for child in children:
            os.waitpid(child, 0)
