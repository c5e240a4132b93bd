"""Test settings plus the stalling consumer (tests/audit/crash_consumers.py), for the ingest
worker subprocess of the crash tests."""

from tests.settings import *  # noqa: F403

INFERENCE_EVENT_CONSUMERS = [*INFERENCE_EVENT_CONSUMERS, "tests.audit.crash_consumers.stall"]  # noqa: F405
