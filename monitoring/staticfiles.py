"""Serve plotly.js from the installed plotly Python package as a static file.

The dashboards mount plotly figures with plotly.js, which private deployments cannot load
from a CDN. Rather than vendoring a copy that would drift from the Python package building
the figures, this finder exposes the bundle the package ships as
``static/vendor/plotly/plotly.min.js``: runserver and WhiteNoise serve it in development,
``collectstatic`` copies (and, in production, hashes and compresses) it with everything else.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import Error
from django.core.files.storage import FileSystemStorage

PLOTLY_JS = "vendor/plotly/plotly.min.js"
_PACKAGE_DATA = Path(plotly.__file__).resolve().parent / "package_data"
_FILENAME = "plotly.min.js"


class PlotlyFinder(BaseFinder):
    """A staticfiles finder for exactly one file: the plotly package's ``plotly.min.js``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=str(_PACKAGE_DATA))
        self.storage.prefix = str(Path(PLOTLY_JS).parent)

    def check(self, **kwargs):
        if not (_PACKAGE_DATA / _FILENAME).is_file():
            return [Error(f"plotly.min.js not found in {_PACKAGE_DATA}", hint="Reinstall the plotly package.",
                          id="monitoring.E001")]
        return []

    def find(self, path, find_all=False, **kwargs):
        if path != PLOTLY_JS or not (_PACKAGE_DATA / _FILENAME).is_file():
            return [] if find_all else None
        found = str(_PACKAGE_DATA / _FILENAME)
        return [found] if find_all else found

    def list(self, ignore_patterns):
        if (_PACKAGE_DATA / _FILENAME).is_file():
            yield _FILENAME, self.storage


# plotly.js injects the stylesheet of its map traces (maplibre) as a <style> element when it
# loads, unless an element with that stylesheet's id is already in the page. The dashboards use
# no map traces, so they declare the id (an empty <meta>) and the strict style-src holds.
_STYLE_GUARD = re.compile(rb'document\.getElementById\("([0-9a-f]{16,128})"\)\)\{var \w+=document\.createElement\("style"\)')


@cache
def plotly_style_guard_ids() -> tuple[str, ...]:
    """Ids whose presence stops plotly.js from injecting stylesheets the dashboards do not need."""
    try:
        bundle = (_PACKAGE_DATA / _FILENAME).read_bytes()
    except OSError:
        return ()
    return tuple(dict.fromkeys(match.decode() for match in _STYLE_GUARD.findall(bundle)))
