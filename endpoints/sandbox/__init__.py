"""Sandbox cluster pieces: a fake Kubernetes API server and a simulated KServe controller
(nothing of the console is imported anywhere in here).

``FakeApiServer`` is a real HTTP server on 127.0.0.1 that speaks enough of the Kubernetes API for
the unmodified ``kubernetes`` client and kubectl; ``Store`` is its thread-safe object store with a
Python API for tests and the simulated KServe controller. See docs/fake-apiserver.md.
"""

import importlib
from typing import Any

# Lazy exports, so that ``python -m endpoints.sandbox.apiserver`` does not import the module twice.
_EXPORTS = {
    "FakeApiServer": "apiserver",
    "RequestRecord": "apiserver",
    "ApiError": "errors",
    "Cause": "errors",
    "FaultInjector": "faults",
    "ChangeEvent": "store",
    "Store": "store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)
