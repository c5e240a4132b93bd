"""Celery's broker for a run without Redis: kombu's filesystem transport with atomic writes.

kombu's filesystem channel creates a message file, then locks it and writes; a consumer moves
the file away without looking at the lock. When a worker picks up a message between the two,
it reads an empty file and dies with ``JSONDecodeError`` (seen under ``make run`` once beat,
the web process and the worker all publish every few seconds). Here a message is written to a
hidden temporary file in the same folder and renamed into place, so a ``.msg`` file is
complete the moment it exists. Selected by ``CELERY_BROKER_TRANSPORT`` in the settings.

The transport also declares itself event-loop capable (it polls the folder from the worker's
event loop). That is not for speed: it decides which pool Celery builds. For a transport that
is not, Celery uses billiard's *blocking* prefork pool, whose processes share one pipe for
incoming work guarded by one inter-process lock (a POSIX semaphore), and the idle process
waiting for work holds that lock. A pool process SIGKILLed while holding it (the OOM killer,
an operator, ``kill -9``) never releases it, so every replacement process blocks on the
semaphore's futex for good: the worker stays up and consumes nothing (issue #25; reproduced
in every trial with one task running and the idle process killed). With an event loop,
Celery uses its asynchronous pool instead, which gives every process pipes of its own: a
killed process takes its pipes with it and its replacement starts clean
(``tests/faults/test_worker_faults.py``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put ``payload`` onto ``queue``: written aside, then renamed to the name consumers list."""
        final = os.path.join(self.data_folder_out, f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg")
        # A leading dot and no ".msg" suffix: consumers never take the file while it is written.
        descriptor, temporary = tempfile.mkstemp(dir=self.data_folder_out, prefix=".", suffix=".part")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(temporary, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


# Messages handed to the pool per event-loop tick at most, so the loop also serves the pool's
# pipes and timers between folder reads (the QoS prefetch limit applies as well).
_DELIVERIES_PER_TICK = 64


class Transport(filesystem.Transport):
    Channel = Channel
    implements = filesystem.Transport.implements.extend(asynchronous=True)

    def register_with_event_loop(self, connection, loop):
        """Poll the folder from the worker's event loop every ``polling_interval`` seconds."""
        loop.call_repeatedly(self.polling_interval, self._deliver_ready, connection)

    def _deliver_ready(self, connection) -> None:
        for _ in range(_DELIVERIES_PER_TICK):
            try:
                self.drain_events(connection, timeout=0)
            except TimeoutError:
                return
