"""Celery's broker for a run without Redis: kombu's filesystem transport with atomic writes.

kombu's filesystem channel creates a message file, then locks it and writes; a consumer moves
the file away without looking at the lock. When a worker picks up a message between the two,
it reads an empty file and dies with ``JSONDecodeError`` (seen under ``make run`` once beat,
the web process and the worker all publish every few seconds). Here a message is written to a
hidden temporary file in the same folder and renamed into place, so a ``.msg`` file is
complete the moment it exists. Selected by ``CELERY_BROKER_TRANSPORT`` in the settings.
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


class Transport(filesystem.Transport):
    Channel = Channel
