"""Work a web process starts once its application is loaded (``console/wsgi.py`` calls
``serving_started``; management commands, workers and tests never do). Apps register it in their
``ready``, so the framework imports none of them — as with ``metrics.register_collector``."""

from __future__ import annotations

from collections.abc import Callable

_hooks: list[Callable[[], None]] = []


def on_serving(hook: Callable[[], None]) -> None:
    if hook not in _hooks:
        _hooks.append(hook)


def serving_started() -> None:
    for hook in _hooks:
        hook()
