"""Navigation shown by permission: an item appears only when its page exists and the user
may open it."""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse


def _everyone(user) -> bool:
    return True


def _auditor(user) -> bool:
    return user.has_perm("audit.view_auditevent")


def _admin(user) -> bool:
    return user.has_perm("console.administer_platform")


# (label, url name, who sees it)
NAVIGATION = [
    ("Endpoints", "endpoints:endpoint-list", _everyone),
    ("Models", "endpoints:model-list", _everyone),
    ("Connections", "endpoints:connection-list", _everyone),
    ("Dashboards", "monitoring:overview", _everyone),
    ("Audit", "audit:event-list", _auditor),
    ("Access", "access:access-overview", _admin),
    ("Admin", "portal:admin-overview", _admin),
    ("API tokens", "access:token-list", _everyone),
]


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    items = []
    current = request.path
    for label, url_name, allowed in NAVIGATION:
        if not allowed(user):
            continue
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue  # the app providing this page is not installed yet
        items.append({"label": label, "url": url, "active": current.startswith(url) and url != "/"})
    return {"nav_items": items}
