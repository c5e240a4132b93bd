"""Storage-connection pages: the list (by project, then platform-wide), create per kind, the
connection's page (settings, which secret fields are set, usage, opt-ins, a storage check),
edit, rotate, delete and opt in/out.

Who may do what is the access rule ``endpoints.access_rules.storage_connections``: everyone
signed in sees their projects' connections and every platform-wide one; the check uses the
credentials, so it needs ``deploy`` (the connection's project, or a project that opted in);
edit, rotate and delete need ``manage`` (Owners of the project; platform-wide ones: platform
admins). Invisible connections are 404, visible ones without the action 403. Opting a project
in or out needs ``manage`` on that project. Every write goes through
``endpoints.services.connections``, which audits it.

No page renders a secret value: secret inputs are always empty, the connection's page says only
which secret fields are set, and a storage check's answer comes redacted from the service.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F, Prefetch
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.generic import FormView, View

from console.permissions import PermissionChecker, can, get_visible_or_404, is_platform_admin, restrict
from console.views.base import ProtectedDetailView, ProtectedListView
from endpoints import selectors
from endpoints.connections import KINDS
from endpoints.filtersets import StorageConnectionFilterSet
from endpoints.forms.connections import ConnectionForm, OptInForm, RotateForm, StorageCheckForm
from endpoints.forms.registry import add_service_errors
from endpoints.models import ConnectionOptIn, Project, StorageConnection
from endpoints.services.connections import (
    connection_create,
    connection_delete,
    connection_opt_in,
    connection_opt_out,
    connection_update,
    rotation_plan,
)
from endpoints.views.common import ServiceFormView, crumbs

# Error reports (a 500 mailed to admins, DEBUG pages) leave out every POSTed value of the pages
# where secrets are typed.
hide_posted_values = method_decorator(sensitive_post_parameters(), name="dispatch")

CREATE_REFUSED = ("You may not create storage connections: they are created by the Owners of a project and, "
                  "platform-wide, by platform admins.")

# What each check state means, in the words the pages use.
CHECK_STATES = {
    "ok": "Readable",
    "missing_container": "Bucket or container not found",
    "missing_object": "Nothing found at this path",
    "denied": "Access denied",
    "unreachable": "Storage not reachable",
    "invalid": "Not a URI this connection serves",
    "not_checked": "Not checked",
    "error": "Check failed",
}


def list_url() -> str:
    return reverse("endpoints:connection-list")


def detail_url(connection: StorageConnection) -> str:
    return reverse("endpoints:connection-detail", kwargs={"pk": connection.pk})


def connection_crumbs(connection: StorageConnection | None = None, last: str | None = None) -> list[dict]:
    items: list[tuple[str, str | None]] = [("Connections", list_url())]
    if connection is not None:
        items.append((connection.name, detail_url(connection) if last else None))
    if last:
        items.append((last, None))
    return crumbs(*items)


def manageable_projects(user):
    return restrict(Project.objects.order_by("name"), user, "manage")


def may_create(user) -> bool:
    return is_platform_admin(user) or manageable_projects(user).exists()


def settings_rows(connection: StorageConnection) -> list[dict]:
    """The kind's settings as the page shows them (label, value, whether it is a block of text)."""
    spec = KINDS.get(connection.kind)
    rows = []
    for field in spec.config if spec else ():
        value = (connection.config or {}).get(field.name)
        if field.kind == "bool":
            value = "yes" if value else "no"
        elif field.kind == "choice":
            value = dict(field.choices).get(value, value)
        rows.append({"label": field.label, "value": value, "block": field.kind == "textarea"})
    return rows


def secret_rows(connection: StorageConnection) -> list[dict]:
    """Which secret fields are set: names only, never a value."""
    spec = KINDS.get(connection.kind)
    stored = set(connection.secret_fields or [])
    return [{"label": field.label, "set": field.name in stored} for field in (spec.secrets if spec else ())]


# --- list ------------------------------------------------------------------------------------------

class ConnectionListView(ProtectedListView):
    """The connections the user can see: each project's, then the platform-wide ones with the
    (visible) projects that opted in."""

    template_name = "endpoints/connections/list.html"
    filterset_class = StorageConnectionFilterSet

    def get_base_queryset(self):
        opt_ins = restrict(ConnectionOptIn.objects.select_related("project").order_by("project__name"),
                           self.request.user, "view")
        return (StorageConnection.objects.select_related("project")
                .prefetch_related(Prefetch("opt_ins", queryset=opt_ins, to_attr="visible_opt_ins"))
                .order_by(F("project__name").asc(nulls_last=True), "name"))

    def get_filterset_kwargs(self, queryset):
        return {**super().get_filterset_kwargs(queryset), "only": ("project", "kind", "scope")}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        groups: list[dict] = []
        platform = []
        for connection in context["object_list"]:
            if connection.is_platform:
                platform.append(connection)
            elif groups and groups[-1]["project"].pk == connection.project_id:
                groups[-1]["connections"].append(connection)
            else:
                groups.append({"project": connection.project, "connections": [connection]})
        user = self.request.user
        context.update(
            title="Storage connections", groups=groups, platform=platform, kinds=KINDS,
            description="Credentials for private model storage. Secret values are stored encrypted and never shown.",
            create_url=reverse("endpoints:connection-create") if may_create(user) else None,
            create_label="New connection", is_admin=is_platform_admin(user),
        )
        return context


# --- create, edit ----------------------------------------------------------------------------------

@hide_posted_values
class ConnectionCreateView(LoginRequiredMixin, ServiceFormView):
    """``?kind=`` chooses the kind (without one, a list of kinds); the project is one the user may
    manage, or platform-wide for platform admins."""

    template_name = "endpoints/connections/form.html"
    submit_label = "Create connection"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            if not may_create(request.user):
                raise PermissionDenied(CREATE_REFUSED)
            self.kind = request.GET.get("kind", "")
            if self.kind not in KINDS:
                if request.method == "POST":
                    messages.error(request, "Choose the kind of storage first.")
                    return redirect("endpoints:connection-create")
                return self.choose_kind(request)
            self.spec = KINDS[self.kind]
            self.service_field_map = ConnectionForm.field_map(self.spec)
        return super().dispatch(request, *args, **kwargs)

    def choose_kind(self, request):
        project = request.GET.get("project", "")
        return render(request, "endpoints/connections/choose_kind.html", {
            "title": "New storage connection", "kinds": KINDS.values(), "project": project,
            "breadcrumbs": connection_crumbs(last="New"),
        })

    def get_form(self, form_class=None):
        user = self.request.user
        return ConnectionForm(**self.get_form_kwargs(), kind=self.kind, projects=list(manageable_projects(user)),
                              allow_platform=is_platform_admin(user))

    def get_initial(self):
        initial = super().get_initial()
        name = self.request.GET.get("project")
        if name:
            project = manageable_projects(self.request.user).filter(name=name).first()
            if project is not None:
                initial["project"] = str(project.pk)
        return initial

    @sensitive_variables()
    def call_service(self, form):
        data = form.cleaned_data
        project = data["project"]
        # The choices are what the user may manage; checked again here, at the write.
        if project is None and not is_platform_admin(self.request.user):
            raise PermissionDenied
        if project is not None and not can(self.request.user, project, "manage"):
            raise PermissionDenied
        return connection_create(actor=self.request.user, project=project, name=data["name"], kind=self.kind,
                                 config=form.config_data(), secrets=form.secret_data(),
                                 display_name=data["display_name"], description=data["description"])

    def success_message(self, connection):
        where = "platform-wide" if connection.is_platform else f"in {connection.project.name}"
        return f"Connection {connection.name} created {where}."

    def get_success_url_for(self, connection):
        return detail_url(connection)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            title=f"New {self.spec.label} connection", spec=self.spec, cancel_url=list_url(),
            description=f"Serves {' or '.join(s + '://' for s in self.spec.schemes)} URIs, e.g. "
                        f"{self.spec.example_uri}. Secret values are stored encrypted and never shown again.",
            breadcrumbs=connection_crumbs(last=f"New {self.spec.label}"),
        )
        return context


class ConnectionObjectMixin(LoginRequiredMixin):
    """Loads the connection the URL names for a signed-in user: 404 if they cannot see it, 403 if
    they may not ``connection_action`` it."""

    connection_action = "manage"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.connection = selectors.connection_get(user=request.user, pk=kwargs["pk"],
                                                       action=self.connection_action)
        return super().dispatch(request, *args, **kwargs)


@hide_posted_values
class ConnectionEditView(ConnectionObjectMixin, ServiceFormView):
    """Settings, name shown and description; a secret typed here replaces the stored one (a
    rotation), blank keeps it."""

    template_name = "endpoints/connections/form.html"
    submit_label = "Save connection"

    def get_form(self, form_class=None):
        self.service_field_map = ConnectionForm.field_map(KINDS[self.connection.kind])
        return ConnectionForm(**self.get_form_kwargs(), kind=self.connection.kind, connection=self.connection)

    @sensitive_variables()
    def call_service(self, form):
        data = form.cleaned_data
        return connection_update(actor=self.request.user, connection=self.connection, config=form.config_data(),
                                 display_name=data["display_name"], description=data["description"],
                                 secrets=form.secret_data() or None)

    def success_message(self, connection):
        if connection.secret_version != self.connection.secret_version:
            return f"Connection {connection.name} saved; its secret is now version {connection.secret_version}."
        return f"Connection {connection.name} saved."

    def get_success_url_for(self, connection):
        return detail_url(connection)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        spec = KINDS[self.connection.kind]
        context.update(
            title=f"Edit connection {self.connection.name}", spec=spec, connection=self.connection,
            cancel_url=detail_url(self.connection), editing=True,
            description="Secret fields are never shown: leave them blank to keep the stored values. A new value "
                        "replaces the stored one (a rotation).",
            breadcrumbs=connection_crumbs(self.connection, "Edit"),
        )
        return context


# --- detail, check ---------------------------------------------------------------------------------

class ConnectionDetailView(ProtectedDetailView):
    """Settings, which secret fields are set, secret version and last rotation, what uses the
    connection (as far as the user can see), the opt-ins and a storage check."""

    template_name = "endpoints/connections/detail.html"
    queryset = StorageConnection.objects.select_related("project", "created_by")
    context_object_name = "connection"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        connection = self.object
        checker = PermissionChecker(user)
        checker.prefetch([connection], ["deploy", "manage"])
        usage = selectors.connection_usage(user=user, connection=connection)
        opt_in_rows = []
        if connection.is_platform:
            opted = {row.project_id for row in connection.opt_ins.all()}
            opt_in_rows = [{"project": project, "opted_in": project.pk in opted}
                           for project in manageable_projects(user)]
        spec = KINDS.get(connection.kind)
        context.update(
            title=connection.display_name or connection.name, spec=spec, usage=usage,
            settings_rows=settings_rows(connection), secret_rows=secret_rows(connection),
            can_manage=checker.can(connection, "manage"), can_check=checker.can(connection, "deploy"),
            opt_in_rows=opt_in_rows, check_form=StorageCheckForm(),
            breadcrumbs=connection_crumbs(connection),
        )
        return context


class ConnectionCheckView(ConnectionObjectMixin, FormView):
    """POST a storage URI: checked now with the connection's credentials; the page shows the
    answer (state and message, redacted by the service). Needs ``deploy`` on the connection."""

    connection_action = "deploy"
    form_class = StorageCheckForm
    template_name = "endpoints/connections/check.html"
    http_method_names = ["post"]

    def form_valid(self, form):
        uri = form.cleaned_data["uri"].strip()
        check = selectors.connection_check(uri=uri, connection=self.connection)
        return self.render_to_response(self.get_context_data(
            form=StorageCheckForm(initial={"uri": uri}), result=check, uri=uri,
            state_label=CHECK_STATES.get(check.state, check.state)))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(title=f"Check a storage URI with {self.connection.name}", connection=self.connection,
                       spec=KINDS.get(self.connection.kind), breadcrumbs=connection_crumbs(self.connection, "Check"))
        return context


# --- rotate, delete --------------------------------------------------------------------------------

@hide_posted_values
class ConnectionRotateView(ConnectionObjectMixin, ServiceFormView):
    """GET: what rotating does — the namespaces whose Secret is updated, the endpoints restarted
    (Hugging Face tokens are read by the serving container at start) and those that keep running
    (KServe reads storage credentials only when a pod starts) — and the new secret fields. POST
    rotates."""

    template_name = "endpoints/connections/rotate.html"
    submit_label = "Rotate secret"

    def get_form(self, form_class=None):
        self.service_field_map = RotateForm.field_map(KINDS[self.connection.kind])
        return RotateForm(**self.get_form_kwargs(), connection=self.connection)

    @sensitive_variables()
    def call_service(self, form):
        updated = connection_update(actor=self.request.user, connection=self.connection, secrets=form.secret_data())
        if updated.secret_version == self.connection.secret_version:
            raise ValidationError("These are the values already stored: nothing was rotated.")
        return updated

    def success_message(self, connection):
        return f"Secret of {connection.name} rotated to version {connection.secret_version}."

    def get_success_url_for(self, connection):
        return detail_url(connection)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        plan = rotation_plan(self.connection)
        visible = {e.pk for e in restrict(selectors.endpoint_queryset().filter(
            pk__in=[e.pk for e in plan["endpoints"]]), self.request.user, "view")}
        restart = [e for e in plan["restart"] if e.pk in visible]
        keep = [e for e in plan["keep"] if e.pk in visible]
        context.update(
            title=f"Rotate the secret of {self.connection.name}", connection=self.connection,
            spec=KINDS[self.connection.kind], restart=restart, keep=keep,
            namespaces=sorted({e.project.namespace for e in restart + keep}),
            cancel_url=detail_url(self.connection), breadcrumbs=connection_crumbs(self.connection, "Rotate"),
        )
        return context


class ConnectionDeleteView(ConnectionObjectMixin, FormView):
    """GET: confirm, with what uses the connection. POST: delete, or the service's refusal (a
    connection some endpoint or model version uses stays)."""

    template_name = "endpoints/connections/delete.html"

    form_class = forms.Form

    def form_valid(self, form):
        name = self.connection.name
        try:
            connection_delete(actor=self.request.user, connection=self.connection)
        except ValidationError as exc:
            add_service_errors(form, exc)
            return self.form_invalid(form)
        messages.success(self.request, f"Connection {name} deleted.")
        return HttpResponseRedirect(list_url())

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        usage = selectors.connection_usage(user=self.request.user, connection=self.connection)
        context.update(
            title=f"Delete connection {self.connection.name}", object=self.connection, usage=usage,
            connection=self.connection, confirm_label="Delete connection", cancel_url=detail_url(self.connection),
            summary="The connection and its stored secret are deleted; its Secrets and ServiceAccounts are removed "
                    "from the clusters by the next reconcile pass. A connection that endpoints or model versions "
                    "use cannot be deleted.",
            breadcrumbs=connection_crumbs(self.connection, "Delete"),
        )
        return context


# --- opt in / out ----------------------------------------------------------------------------------

class ConnectionOptInView(LoginRequiredMixin, View):
    """POST ``project`` and ``action`` (in/out): a project's Owner opts it into a platform-wide
    connection, or out again. The connection must be visible (404), the project manageable (404
    when invisible, 403 when only visible)."""

    http_method_names = ["post"]

    def post(self, request, pk):
        connection = selectors.connection_get(user=request.user, pk=pk)
        form = OptInForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose a project and whether to opt in or out.")
            return redirect(detail_url(connection))
        project = get_visible_or_404(Project.objects.all(), request.user, "manage", pk=form.cleaned_data["project"])
        opting_in = form.cleaned_data["action"] == "in"
        try:
            if opting_in:
                connection_opt_in(actor=request.user, connection=connection, project=project)
            else:
                connection_opt_out(actor=request.user, connection=connection, project=project)
        except ValidationError as exc:
            for text in exc.messages:
                messages.error(request, text)
        else:
            messages.success(request, f"{project.name} {'may now use' if opting_in else 'no longer uses'} "
                                      f"{connection.name}.")
        return redirect(detail_url(connection))


urlpatterns = [
    path("connections/", ConnectionListView.as_view(), name="connection-list"),
    path("connections/new/", ConnectionCreateView.as_view(), name="connection-create"),
    path("connections/<id:pk>/", ConnectionDetailView.as_view(), name="connection-detail"),
    path("connections/<id:pk>/edit/", ConnectionEditView.as_view(), name="connection-edit"),
    path("connections/<id:pk>/rotate/", ConnectionRotateView.as_view(), name="connection-rotate"),
    path("connections/<id:pk>/delete/", ConnectionDeleteView.as_view(), name="connection-delete"),
    path("connections/<id:pk>/check/", ConnectionCheckView.as_view(), name="connection-check"),
    path("connections/<id:pk>/opt-in/", ConnectionOptInView.as_view(), name="connection-opt-in"),
]
