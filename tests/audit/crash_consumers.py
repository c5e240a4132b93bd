"""A consumer for the crash tests (tests/audit/test_ingest_buffer.py): on its Nth call in a
process it writes a marker file and hangs, so the test can SIGKILL the worker mid-batch."""

from __future__ import annotations

import os
import time
from pathlib import Path

_calls = []


def stall(pairs):
    _calls.append(len(pairs))
    marker = os.environ.get("CRASH_TEST_MARKER")
    if marker and len(_calls) == int(os.environ.get("CRASH_TEST_STALL_AT", "2")):
        Path(marker).write_text(str(len(pairs)))
        time.sleep(120)
