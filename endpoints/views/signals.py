"""Alerts and notifications pages (``docs/signals.md``).

Platform admins: reconciler alerts (acknowledge, resolve), notification channels (create,
delete) and the delivery log — 403 for everyone else before any object is looked up. A
project's notification page follows the project: whoever may see the project sees which
channels it notifies (invisible → 404); only its Owners (``manage``) and platform admins may
subscribe or unsubscribe (403 otherwise).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.generic import View

from console.permissions import can, restrict
from console.views.base import ProtectedDetailView, ProtectedListView
from endpoints.models import (
    NotificationChannel,
    NotificationDelivery,
    NotificationSubscription,
    Project,
    ReconcileAlert,
)
from endpoints.services.alerts import alert_acknowledge, alert_resolve
from endpoints.services.notifications import (
    channel_create,
    channel_delete,
    subscription_create,
    subscription_delete,
)
from endpoints.views.admin import AdminFormView, AdminPageMixin
from endpoints.views.common import PAGE_SIZE, crumbs

# --- reconciler alerts -----------------------------------------------------------------------


class ReconcileAlertListView(AdminPageMixin, ProtectedListView):
    """Alerts by state (open and acknowledged first), with first and last seen."""

    template_name = "endpoints/signals/alert_list.html"
    paginate_by = PAGE_SIZE
    admin_section = "Alerts"

    def get_base_queryset(self):
        return ReconcileAlert.objects.select_related("cluster", "acknowledged_by", "resolved_by").order_by(
            "-last_seen_at")

    def filter_queryset(self, queryset):
        state = self.request.GET.get("state", "unresolved")
        if state == "unresolved":
            return queryset.exclude(state=ReconcileAlert.State.RESOLVED)
        if state in ReconcileAlert.State.values:
            return queryset.filter(state=state)
        return queryset

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(title="Reconciler alerts", object_name_plural="alerts",
                       state=self.request.GET.get("state", "unresolved"),
                       states=[("unresolved", "Open or acknowledged"), *ReconcileAlert.State.choices, ("all", "All")],
                       description="What the reconciler refused or failed to do on its own. An alert resolves when a "
                                   "later pass finds its cause gone.")
        return context


class _AlertActionView(AdminPageMixin, View):
    http_method_names = ["post"]

    def load_objects(self):
        self.alert = get_object_or_404(
            restrict(ReconcileAlert.objects.select_related("cluster"), self.request.user, "manage"),
            pk=self.kwargs["pk"])


class ReconcileAlertAcknowledgeView(_AlertActionView):
    def post(self, request, *args, **kwargs):
        if alert_acknowledge(actor=request.user, alert=self.alert):
            messages.success(request, f"Alert on {self.alert.cluster.name} acknowledged.")
        else:
            messages.info(request, "This alert was already acknowledged or resolved.")
        return redirect("endpoints:alert-list")


class ReconcileAlertResolveView(_AlertActionView):
    def post(self, request, *args, **kwargs):
        if alert_resolve(actor=request.user, alert=self.alert):
            messages.success(request, f"Alert on {self.alert.cluster.name} resolved.")
        else:
            messages.info(request, "This alert was already resolved.")
        return redirect("endpoints:alert-list")


# --- channels and the delivery log (platform admins) -----------------------------------------


class NotificationChannelForm(forms.Form):
    name = forms.SlugField(max_length=63)
    kind = forms.ChoiceField(choices=NotificationChannel.Kind.choices)
    target = forms.CharField(label="Addresses or URL", widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="E-mail: comma-separated addresses. Webhook: the http(s) URL to POST to.")
    all_projects = forms.BooleanField(required=False, label="Every project",
                                      help_text="Receive every notification; otherwise only those of the projects "
                                                "whose Owners subscribe to it.")


class NotificationChannelListView(AdminPageMixin, ProtectedListView):
    template_name = "endpoints/signals/channel_list.html"
    paginate_by = PAGE_SIZE
    admin_section = "Notifications"
    queryset = NotificationChannel.objects.order_by("name")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(title="Notification channels", object_name_plural="channels",
                       description="Where alerts, endpoint failures, drift alerts and expiring grants are sent.",
                       create_url=reverse("endpoints:channel-create"), create_label="Add a channel",
                       deliveries_url=reverse("endpoints:delivery-list"))
        return context


class NotificationChannelCreateView(AdminFormView):
    form_class = NotificationChannelForm
    title = "Add a notification channel"
    submit_label = "Add channel"
    admin_section = "Notifications"
    list_url_name = "endpoints:channel-list"

    def form_valid(self, form):
        try:
            channel, secret = channel_create(actor=self.request.user, **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            return self.form_invalid(form)
        if not secret:
            messages.success(self.request, f"Channel {channel.name} added.")
            return redirect("endpoints:channel-list")
        # The signing secret is shown on this response only.
        return render(self.request, "endpoints/signals/channel_secret.html", {
            "title": f"Channel {channel.name} added", "channel": channel, "secret": secret,
            "breadcrumbs": crumbs(("Notifications", reverse("endpoints:channel-list")), (channel.name, None))})


class NotificationChannelDeleteView(AdminPageMixin, View):
    http_method_names = ["post"]

    def load_objects(self):
        self.channel = get_object_or_404(restrict(NotificationChannel.objects.all(), self.request.user, "manage"),
                                         pk=self.kwargs["pk"])

    def post(self, request, *args, **kwargs):
        channel_delete(actor=request.user, channel=self.channel)
        messages.success(request, f"Channel {self.channel.name} deleted.")
        return redirect("endpoints:channel-list")


class NotificationDeliveryListView(AdminPageMixin, ProtectedListView):
    """The delivery log: every notification per channel, with attempts and the last error."""

    template_name = "endpoints/signals/delivery_list.html"
    paginate_by = PAGE_SIZE
    admin_section = "Notifications"
    queryset = NotificationDelivery.objects.select_related("notification", "channel").order_by("-created_at", "-pk")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(title="Notification deliveries", object_name_plural="deliveries",
                       description="Every notification sent or being retried, per channel.")
        return context


# --- a project's subscriptions (its Owners) --------------------------------------------------


class ProjectNotificationsView(ProtectedDetailView):
    """Which channels the project notifies; its Owners subscribe and unsubscribe here."""

    template_name = "endpoints/signals/project_notifications.html"
    queryset = Project.objects.all()
    slug_field = slug_url_kwarg = "name"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        project, user = self.object, self.request.user
        subscriptions = list(restrict(
            NotificationSubscription.objects.filter(project=project).select_related("channel"), user, "view"))
        subscribed = {s.channel_id for s in subscriptions}
        may_manage = can(user, project, "manage")
        choices = []
        if may_manage:
            choices = [c for c in restrict(NotificationChannel.objects.filter(enabled=True, all_projects=False),
                                           user, "view").order_by("name") if c.pk not in subscribed]
        context.update(title=f"Notifications of {project.name}", project=project, subscriptions=subscriptions,
                       choices=choices, may_manage=may_manage,
                       platform_channels=NotificationChannel.objects.filter(all_projects=True, enabled=True).count(),
                       breadcrumbs=crumbs((project.name, None), ("Notifications", None)))
        return context

    def post(self, request, *args, **kwargs):
        project = self.get_object()
        if not can(request.user, project, "manage"):
            raise PermissionDenied("Only the project's Owners may change its notifications.")
        channel = restrict(NotificationChannel.objects.filter(enabled=True, all_projects=False), request.user,
                           "view").filter(pk=request.POST.get("channel") or 0).first()
        if channel is None:
            messages.error(request, "Choose one of the channels offered.")
            return redirect("endpoints:project-notifications", name=project.name)
        subscription_create(actor=request.user, project=project, channel=channel)
        messages.success(request, f"{project.name} now notifies {channel.name}.")
        return redirect("endpoints:project-notifications", name=project.name)


class ProjectUnsubscribeView(ProtectedDetailView):
    """POST: stop sending the project's notifications to one channel (its Owners)."""

    http_method_names = ["post"]
    queryset = Project.objects.all()
    slug_field = slug_url_kwarg = "name"
    permission_action = "manage"

    def post(self, request, *args, **kwargs):
        project = self.get_object()
        subscription = get_object_or_404(NotificationSubscription.objects.select_related("channel", "project"),
                                         project=project, pk=self.kwargs["subscription"])
        subscription_delete(actor=request.user, subscription=subscription)
        messages.success(request, f"{project.name} no longer notifies {subscription.channel.name}.")
        return redirect("endpoints:project-notifications", name=project.name)


urlpatterns = [
    path("admin/alerts/", ReconcileAlertListView.as_view(), name="alert-list"),
    path("admin/alerts/<id:pk>/acknowledge/", ReconcileAlertAcknowledgeView.as_view(), name="alert-acknowledge"),
    path("admin/alerts/<id:pk>/resolve/", ReconcileAlertResolveView.as_view(), name="alert-resolve"),
    path("admin/notifications/", NotificationChannelListView.as_view(), name="channel-list"),
    path("admin/notifications/new/", NotificationChannelCreateView.as_view(), name="channel-create"),
    path("admin/notifications/<id:pk>/delete/", NotificationChannelDeleteView.as_view(), name="channel-delete"),
    path("admin/notifications/deliveries/", NotificationDeliveryListView.as_view(), name="delivery-list"),
    path("notifications/<slug:name>/", ProjectNotificationsView.as_view(), name="project-notifications"),
    path("notifications/<slug:name>/<id:subscription>/unsubscribe/", ProjectUnsubscribeView.as_view(),
         name="project-unsubscribe"),
]
