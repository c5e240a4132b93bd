"""``python manage.py ingest_worker``: drain the payload-logger buffer continuously (the ingest
worker process; run one or more beside the receivers). ``--once`` drains until empty and exits.
SIGTERM/SIGINT finish the current batch, then stop; a SIGKILL rolls it back (its deliveries are
taken again by the next worker)."""

from __future__ import annotations

import signal
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from audit import buffer


class Command(BaseCommand):
    help = "Drain the payload-logger ingest buffer in batches (continuously, or once with --once)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Drain until the buffer is empty, then exit.")
        parser.add_argument("--batch", type=int, default=None, help="Deliveries per transaction "
                            "(default AUDIT_INGEST_DRAIN_BATCH).")
        parser.add_argument("--idle-sleep", type=float, default=0.2, help="Seconds to wait when the buffer is empty.")

    def handle(self, *args, **options):
        stopping = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.append(True))
        self.stdout.write("ingest worker ready", ending="\n")
        self.stdout.flush()
        while not stopping:
            totals = buffer.buffer_drain(limit=options["batch"], stop=lambda: bool(stopping))
            buffer.refusals_flush()
            if totals["deliveries"]:
                self.stdout.write(f"drained {totals['deliveries']} deliveries: {totals['events']} new events, "
                                  f"{totals['duplicates']} duplicates, {totals['failed']} set aside")
            if options["once"]:
                break
            if not totals["deliveries"]:
                close_old_connections()
                time.sleep(options["idle_sleep"])
