"""The portal's pages: the home page by persona and the platform admins' overview."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from console.heartbeats import readings as heartbeat_readings
from console.portal.home import EXPIRY_WINDOW_DAYS, home_for
from console.views.base import platform_admin_required
from endpoints import selectors as endpoint_selectors


@login_required
def home(request):
    """What to look at first, by who is signed in (console/portal/home.py): their endpoints and
    what needs attention; for platform admins expiring grants, grant changes and reconciler
    alerts; for auditors the health of the audit trail."""
    return render(request, "console/home.html", {**home_for(request.user), "expiry_days": EXPIRY_WINDOW_DAYS})


@platform_admin_required
def admin_overview(request):
    return render(request, "console/admin_overview.html", {
        "counts": endpoint_selectors.platform_counts(),
        "alerts": list(endpoint_selectors.alerts_active()),
        "heartbeats": list(heartbeat_readings().values()),
    })
