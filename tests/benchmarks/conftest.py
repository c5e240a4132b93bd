"""Benchmarks print their figures; run with `make bench` (not part of `make test`)."""

import json
import os
import platform
import time
from pathlib import Path

import pytest

RESULTS = Path(os.environ.get("BENCH_RESULTS", Path(__file__).resolve().parents[2] / "test-output" / "bench"))


def pytest_addoption(parser):
    group = parser.getgroup("benchmarks")
    group.addoption("--records", type=int, default=int(os.environ.get("BENCH_RECORDS", "1000000")),
                    help="monitoring benchmark: inference records behind the 24 h dashboard (default 1,000,000)")
    group.addoption("--drift-rows", type=int, default=int(os.environ.get("BENCH_DRIFT_ROWS", "1000000")),
                    help="monitoring benchmark: rows in the drift window (default 1,000,000)")
    group.addoption("--export-events", type=int, default=int(os.environ.get("BENCH_EXPORT_EVENTS", "100000")),
                    help="audit export benchmark: events in the exported trail (default 100,000)")


@pytest.fixture
def report(request):
    """Collects figures and prints them (and writes test-output/bench/<name>.json)."""
    figures: dict = {}
    yield figures
    RESULTS.mkdir(parents=True, exist_ok=True)
    figures["_machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                           # What the benchmark says it used, else what the environment names.
                           "database": figures.get("database")
                           or os.environ.get("DATABASE_URL", "sqlite").split("@")[-1],
                           "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    (RESULTS / f"{request.node.name}.json").write_text(json.dumps(figures, indent=2, default=str))
    print(f"\n== {request.node.name}")
    for key, value in figures.items():
        print(f"   {key}: {value}")
