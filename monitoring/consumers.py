"""The monitoring app's consumer of paired payload-logger events.

Listed in ``settings.INFERENCE_EVENT_CONSUMERS``; the audit app's ingest pipeline calls every
consumer there with each list of pairs it dispatches (``audit.inference``), inside its own
transaction. Monitoring never reads the audit tables and audit never imports monitoring.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitoring import services


def record_inference(pairs: Sequence) -> None:
    """Record ``pairs`` (``audit.inference.InferencePair``) as inference records, rollups and
    live bin counts. Safe to call again with pairs already recorded."""
    services.inference_records_ingest(pairs)
