"""Sealing the audit trail: tamper evidence with an HMAC key kept outside the database.

A periodic task (``seal_pending``) groups events that no seal covers yet into ``AuditSeal``
rows of at most ``AUDIT_SEAL_MAX_EVENTS`` events. Each seal records:

- the covered ids as inclusive ranges, their count and the occurred_at span;
- ``events_digest`` = SHA-256 over ``"<id>:<digest>\\n"`` of the covered events in id order
  (so a changed id, a swapped pair or a changed event all change it);
- ``fingerprints``: the first 16 hex digits of every covered event's digest, in id order, so
  verification can name the exact event that changed;
- ``previous_hash``: the previous seal's ``seal_hash`` (a chain: a deleted or re-ordered seal
  breaks it);
- ``seal_hash`` = SHA-256 of the canonical JSON of all of the above, and ``signature`` =
  HMAC-SHA256(key[key_id], seal_hash). Without the key nobody can forge a seal, even with
  full write access to the database.

Out-of-order commits: ids are handed out when a row is inserted, but transactions commit
in any order, so when the sealer runs, an id below the highest sealed one may still be
missing and appear later. The sealer therefore never assumes "sealed up to N": it seals
whichever committed events no seal covers, and keeps a low-water mark (``floor``) below
which every id is either sealed or a permanent gap. A gap counts as permanent once the first
event after it was received more than ``AUDIT_SEAL_GRACE_SECONDS`` ago (longer than any
transaction may run: a rolled-back insert leaves such a gap forever). An event that appears
below the floor later was not written by the application: verification reports it as
inserted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit import digests
from audit.models import AuditEvent, AuditSeal

FORMAT = 1
FINGERPRINT_LENGTH = 16
_LOCK_ID = 0x61756469  # "audi": the sealer's PostgreSQL advisory lock


# --- pure helpers ---------------------------------------------------------------------------

def events_digest(rows: Iterable[tuple[int, str]]) -> str:
    """SHA-256 over ``id:digest`` lines of (id, digest) rows given in id order."""
    h = hashlib.sha256()
    for event_id, digest in rows:
        h.update(f"{event_id}:{digest}\n".encode())
    return h.hexdigest()


def fingerprint(digest: str) -> str:
    return digest[:FINGERPRINT_LENGTH]


def ranges_of(ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids as inclusive [first, last] runs of consecutive ids."""
    out: list[list[int]] = []
    for i in ids:
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def expand(ranges: list[list[int]]) -> list[int]:
    return [i for first, last in ranges for i in range(first, last + 1)]


def merge_ranges(all_ranges: Iterable[list[int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for first, last in sorted((int(a), int(b)) for a, b in all_ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return merged


def seal_payload(seal: AuditSeal) -> dict:
    """The canonical content of a seal that its hash and signature cover."""
    return {
        "format": FORMAT,
        "sequence": int(seal.sequence),
        "created_at": digests._timestamp(seal.created_at),
        "key_id": seal.key_id,
        "ranges": [[int(a), int(b)] for a, b in seal.ranges],
        "first_event_id": int(seal.first_event_id),
        "last_event_id": int(seal.last_event_id),
        "event_count": int(seal.event_count),
        "min_occurred_at": digests._timestamp(seal.min_occurred_at),
        "max_occurred_at": digests._timestamp(seal.max_occurred_at),
        "events_digest": seal.events_digest,
        "fingerprints_sha256": hashlib.sha256(seal.fingerprints.encode()).hexdigest(),
        "floor": int(seal.floor),
        "previous_hash": seal.previous_hash,
    }


def compute_seal_hash(seal: AuditSeal) -> str:
    return hashlib.sha256(digests.canonical_bytes(seal_payload(seal))).hexdigest()


def signing_keys() -> dict[str, str]:
    return dict(settings.AUDIT_SIGNING_KEYS)


def sign(seal_hash: str, key_id: str) -> str:
    key = signing_keys().get(key_id)
    if not key:
        raise ImproperlyConfigured(f"audit signing key {key_id!r} is not configured (AUDIT_SIGNING_KEYS)")
    return hmac.new(key.encode(), seal_hash.encode(), hashlib.sha256).hexdigest()


def signature_valid(seal: AuditSeal, seal_hash: str) -> bool | None:
    """True/False, or None when the seal's key is not configured."""
    key = signing_keys().get(seal.key_id)
    if not key:
        return None
    expected = hmac.new(key.encode(), seal_hash.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, seal.signature)


# --- the sealer -----------------------------------------------------------------------------

def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
    # SQLite: transactions start IMMEDIATE (settings), so sealers already run one at a time.


def _make_seal(rows: list[tuple], *, sequence: int, previous_hash: str, floor: int, now) -> AuditSeal:
    key_id = settings.AUDIT_SIGNING_KEY_ID
    seal = AuditSeal(
        sequence=sequence,
        created_at=now,
        key_id=key_id,
        ranges=ranges_of(r[0] for r in rows),
        first_event_id=rows[0][0],
        last_event_id=rows[-1][0],
        event_count=len(rows),
        min_occurred_at=min(r[2] for r in rows),
        max_occurred_at=max(r[2] for r in rows),
        events_digest=events_digest((r[0], r[1]) for r in rows),
        fingerprints="".join(fingerprint(r[1]) for r in rows),
        floor=floor,
        previous_hash=previous_hash,
    )
    seal.seal_hash = compute_seal_hash(seal)
    seal.signature = sign(seal.seal_hash, key_id)
    seal.save(force_insert=True)
    return seal


class _Coverage:
    """Membership of ascending ids in sorted, merged ranges (one pass)."""

    def __init__(self, ranges: list[list[int]]):
        self.ranges = ranges
        self.index = 0

    def covers(self, event_id: int) -> bool:
        while self.index < len(self.ranges) and self.ranges[self.index][1] < event_id:
            self.index += 1
        return self.index < len(self.ranges) and self.ranges[self.index][0] <= event_id


def seal_pending(*, now=None) -> list[AuditSeal]:
    """Seal every committed event that no seal covers yet (see the module docstring)."""
    now = now or timezone.now()
    grace_cut = now - timedelta(seconds=settings.AUDIT_SEAL_GRACE_SECONDS)
    max_events = settings.AUDIT_SEAL_MAX_EVENTS
    created: list[AuditSeal] = []
    with transaction.atomic():
        _lock()
        last = AuditSeal.objects.order_by("-sequence").only("sequence", "seal_hash", "floor").first()
        sequence = last.sequence if last else 0
        previous_hash = last.seal_hash if last else ""
        floor = last.floor if last else 0
        coverage = _Coverage(merge_ranges(
            r for ranges in AuditSeal.objects.filter(last_event_id__gt=floor).values_list("ranges", flat=True)
            for r in ranges
        ))
        rows = (
            AuditEvent.objects.filter(id__gt=floor).order_by("id")
            .values_list("id", "digest", "occurred_at", "received_at").iterator(chunk_size=5000)
        )
        new_floor = floor
        floor_frozen = False
        previous_id = floor
        pending: list[tuple] = []
        for row in rows:
            event_id, _, _, received_at = row
            if not floor_frozen and event_id > previous_id + 1 and received_at >= grace_cut:
                # An id below this one may still be in a transaction that has not committed.
                floor_frozen = True
            if not coverage.covers(event_id):
                pending.append(row)
            if not floor_frozen:
                new_floor = event_id
            previous_id = event_id
            if len(pending) >= max_events:
                sequence += 1
                seal = _make_seal(pending, sequence=sequence, previous_hash=previous_hash,
                                  floor=min(new_floor, pending[-1][0]), now=now)
                created.append(seal)
                previous_hash = seal.seal_hash
                pending = []
        if pending:
            sequence += 1
            created.append(_make_seal(pending, sequence=sequence, previous_hash=previous_hash,
                                      floor=new_floor, now=now))
    return created


def unsealed_count(newest: AuditSeal | None = None, *, limit: int | None = None) -> int:
    """Events no seal covers yet -- what the next sealer run picks up -- counted exactly: the
    ids above the newest seal's floor outside the ranges of the seals above it (a late
    committer with a lower id counts too). Pass the newest seal if already read (its ``floor``
    is enough). Seals above the floor only exist within the sealer's grace period, so their
    ranges are few. With ``limit`` it counts at most ``limit + 1`` (a page showing "more than
    N" must not walk a trail nobody sealed)."""
    if newest is None:
        newest = AuditSeal.objects.order_by("-sequence").only("floor").first()
    floor = newest.floor if newest else 0
    covered = merge_ranges(
        r for ranges in AuditSeal.objects.filter(last_event_id__gt=floor).values_list("ranges", flat=True)
        for r in ranges
    ) if newest else []
    events = AuditEvent.objects.filter(id__gt=floor)
    if covered:
        q = Q()
        for first, last in covered:
            q |= Q(id__gte=first, id__lte=last)
        events = events.exclude(q)
    if limit is not None:
        return events.order_by().values("id")[:limit + 1].count()
    return events.count()


def seal_for_event(event_id: int) -> AuditSeal | None:
    """The seal covering an event (for the event page), or None while it is unsealed."""
    for seal in AuditSeal.objects.filter(first_event_id__lte=event_id, last_event_id__gte=event_id).only(
        "pk", "sequence", "ranges", "created_at", "key_id"
    ):
        if any(a <= event_id <= b for a, b in seal.ranges):
            return seal
    return None
