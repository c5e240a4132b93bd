"""Access-control pages: users and service accounts, teams, grants on projects, models and
endpoints, "who can access this and why", "what can this user reach", the access check and
API tokens.

Thin function views: reads through ``console.access.selectors`` and the chokepoint, writes through
``console.access.grants``/``console.access.services``/``console.access.tokens`` (which audit). Users, teams and the
access check are for platform admins (others get 403). The access page of a project, model
or endpoint is also open to whoever may manage it (an Owner): invisible → 404, visible
without the manage permission → 403.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from console import views as base_views
from console.access import grants as grant_services
from console.access import identity, oidc, selectors, services, tokens, try_it
from console.access.forms import (
    CheckAccessForm,
    DeactivateForm,
    GrantForm,
    GrantRevokeForm,
    GroupMappingForm,
    IdentityLinkForm,
    TeamForm,
    TeamMemberForm,
    TokenForm,
    UserCreateForm,
    UserRolesForm,
)
from console.access.models import ApiToken, ExternalIdentity, Grant, GroupMapping
from console.access.roles import GLOBAL_ROLES
from console.auth import LOCAL_PASSWORDS_ADMINS
from console.permissions import get_visible_or_404, is_platform_admin
from console.views.base import platform_admin_required
from endpoints import selectors as endpoint_selectors
from endpoints.models import Endpoint, Project, RegisteredModel

PAGE_SIZE = 50
ENDPOINT_LINKS = 100  # endpoint access pages linked from a project's access page


def add_service_errors(form, exc: ValidationError, field_map: dict | None = None) -> None:
    """A service's ValidationError on the form: field errors on their field, the rest on top."""
    field_map = field_map or {}
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for name, errors in exc.message_dict.items():
        target = field_map.get(name, name)
        if target in form.fields:
            form.add_error(target, errors)
        else:
            form.add_error(None, errors)


def _page(request, queryset, size: int = PAGE_SIZE):
    return Paginator(queryset, size).get_page(request.GET.get("page"))


def _crumbs(*items):
    return [{"label": label, "url": url} for label, url in items]


# --- overview ---------------------------------------------------------------------------------------

@platform_admin_required
def access_overview(request):
    return render(request, "console/access/overview.html", {
        "title": "Access",
        "counts": selectors.access_counts(),
        "expiring": list(selectors.grants_expiring_soon()[:20]),
        "recent": list(selectors.grants_visible_to(user=request.user, include_ended=True)[:10]),
        "projects": list(selectors.projects_with_grant_counts()[:100]),
        "roles": selectors.ROLE_TABLE,
        "role_descriptions": grant_services.ROLE_DESCRIPTIONS,
        "global_roles": GLOBAL_ROLES,
    })


# --- users -----------------------------------------------------------------------------------------

@platform_admin_required
def user_list(request):
    search = request.GET.get("q", "").strip()
    kind = request.GET.get("kind", "")
    page = _page(request, selectors.user_list(search=search, kind=kind))
    return render(request, "console/access/user_list.html", {
        "title": "Users and service accounts", "page_obj": page, "object_list": page.object_list,
        "q": search, "kind": kind, "global_role_names": set(GLOBAL_ROLES),
        "crumbs": _crumbs(("Access", reverse("access:access-overview")), ("Users", None)),
    })


@platform_admin_required
def user_create(request):
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        service = data["kind"] == "service"
        try:
            user = services.user_create(
                actor=request.user, username=data["username"], email=data["email"],
                first_name=data["first_name"], last_name=data["last_name"], is_service_account=service,
                global_roles=data["global_roles"], description=data["description"])
            for team in data["teams"]:
                services.team_add_member(actor=request.user, team=team, user=user)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if service:
                messages.success(request, f"Service account {user.username} created. Create an API token for it "
                                          "below; it can never sign in.")
            else:
                link = services.user_invite_link(user=user, base_url=services.site_root(request))
                messages.success(request, f"{user.username} created. Send them this one-time link to set a "
                                          f"password: {link}")
            return redirect("access:user-detail", pk=user.pk)
    return render(request, "console/access/form.html", {
        "title": "Create a user or service account", "form": form, "submit_label": "Create",
        "cancel_url": reverse("access:user-list"),
        "description": "People receive a one-time link to set their password. Service accounts never sign "
                       "in; they use API tokens.",
        "crumbs": _crumbs(("Access", reverse("access:access-overview")), ("Users", reverse("access:user-list")),
                          ("New", None)),
    })


@platform_admin_required
def user_detail(request, pk):
    subject = selectors.user_get(pk)
    current_roles = [g.name for g in subject.groups.all() if g.name in GLOBAL_ROLES]
    return render(request, "console/access/user_detail.html", {
        "title": subject.username, "subject": subject,
        "reach": selectors.what_user_can_reach(subject),
        "roles_form": UserRolesForm(initial={"global_roles": current_roles}),
        "tokens": list(selectors.tokens_of(user=subject)),
        "is_self": subject.pk == request.user.pk,
        "lockout": None if subject.is_service_account else services.sign_in_lockout(subject),
        "identities": list(selectors.identities_of(user=subject)),
        "reset_refusal": services.sign_in_reset_refusal(actor=request.user, user=subject),
        "crumbs": _crumbs(("Access", reverse("access:access-overview")), ("Users", reverse("access:user-list")),
                          (subject.username, None)),
    })


@platform_admin_required
@require_POST
def user_roles(request, pk):
    subject = selectors.user_get(pk)
    form = UserRolesForm(request.POST)
    if form.is_valid():
        try:
            services.user_set_global_roles(actor=request.user, user=subject, roles=form.cleaned_data["global_roles"])
            messages.success(request, f"Global roles of {subject.username} saved.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    return redirect("access:user-detail", pk=subject.pk)


@platform_admin_required
def user_deactivate(request, pk):
    subject = selectors.user_get(pk)
    form = DeactivateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_deactivate(actor=request.user, user=subject, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{subject.username} is deactivated: signed out everywhere, API tokens "
                                      "revoked.")
            return redirect("access:user-detail", pk=subject.pk)
    return render(request, "generic/confirm.html", {
        "title": f"Deactivate {subject.username}", "object": subject, "form": form,
        "summary": "The account can no longer sign in or use the API.",
        "consequences": ["Every session of this account ends now.",
                         "Every API token of this account is revoked (each revocation is audited).",
                         "Inference calls with its tokens are refused at once.",
                         "Its grants stay on record; reactivating the account restores them, not the tokens."],
        "confirm_label": "Deactivate", "cancel_url": reverse("access:user-detail", args=[subject.pk]),
    })


@platform_admin_required
@require_POST
def user_reactivate(request, pk):
    subject = selectors.user_get(pk)
    services.user_reactivate(actor=request.user, user=subject)
    messages.success(request, f"{subject.username} may sign in again.")
    return redirect("access:user-detail", pk=subject.pk)


@platform_admin_required
def user_sign_in_reset(request, pk):
    """Confirm, then reset a person's sign-in and show their new one-time link (once)."""
    subject = selectors.user_get(pk)
    if subject.is_service_account:
        raise Http404("Service accounts never sign in.")
    form = DeactivateForm(request.POST or None)  # just an optional reason, for the audit trail
    if request.method == "POST" and form.is_valid():
        try:
            services.user_sign_in_reset(actor=request.user, user=subject, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            link = services.user_invite_link(user=subject, base_url=services.site_root(request))
            # Rendered, never redirected: the link is not kept anywhere (not even a message).
            response = render(request, "console/access/sign_in_link.html", {
                "title": f"New sign-in link for {subject.username}", "subject": subject, "link": link,
                "valid_until": timezone.now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT),
                "back_url": reverse("access:user-detail", args=[subject.pk]),
            })
            response["Cache-Control"] = "no-store"
            return response
    refusal = services.sign_in_reset_refusal(actor=request.user, user=subject)
    if refusal and not form.errors:
        form.add_error(None, refusal)
    return render(request, "generic/confirm.html", {
        "title": f"Reset the sign-in of {subject.username}", "object": subject, "form": form,
        "summary": "For someone who forgot their password, lost or used up their invite link, or is locked out.",
        "consequences": ["Their current password stops working now.",
                         "Every session of this account ends now.",
                         "Any earlier invite link stops working.",
                         "Their sign-in lockout, if any, is lifted.",
                         "You get a new one-time link to pass on; they set a new password with it.",
                         "API tokens, roles, teams and grants are not touched."],
        "confirm_label": "Reset sign-in", "cancel_url": reverse("access:user-detail", args=[subject.pk]),
    })


@platform_admin_required
@require_POST
def user_unlock(request, pk):
    """Lift a sign-in lockout; the password stays as it is."""
    subject = selectors.user_get(pk)
    if services.user_unlock(actor=request.user, user=subject):
        messages.success(request, f"{subject.username} may sign in again with their password.")
    else:
        messages.info(request, f"{subject.username} was not locked out.")
    return redirect("access:user-detail", pk=subject.pk)


@platform_admin_required
def service_token_create(request, pk):
    """A platform admin creates an API token for a service account (shown once)."""
    subject = selectors.user_get(pk)
    if not subject.is_service_account:
        raise Http404("Only service accounts get tokens from an admin; people create their own.")
    return _token_form(request, holder=subject, cancel_url=reverse("access:user-detail", args=[subject.pk]),
                       title=f"New API token for {subject.username}")


# --- teams -----------------------------------------------------------------------------------------

@platform_admin_required
def team_list(request):
    page = _page(request, selectors.team_list())
    return render(request, "console/access/team_list.html", {
        "title": "Teams", "page_obj": page, "object_list": page.object_list,
        "crumbs": _crumbs(("Access", reverse("access:access-overview")), ("Teams", None)),
    })


@platform_admin_required
def team_create(request):
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = services.team_create(actor=request.user, name=form.cleaned_data["name"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Team {team.name} created.")
            return redirect("access:team-detail", pk=team.pk)
    return render(request, "console/access/form.html", {
        "title": "Create a team", "form": form, "submit_label": "Create", "cancel_url": reverse("access:team-list"),
        "crumbs": _crumbs(("Access", reverse("access:access-overview")), ("Teams", reverse("access:team-list")),
                          ("New", None)),
    })


@platform_admin_required
def team_detail(request, pk):
    team = selectors.team_get(pk)
    return render(request, "console/access/team_detail.html", {
        "title": f"Team {team.name}", "team": team,
        "members": list(team.user_set.order_by("username")),
        "grants": list(Grant.objects.filter(grant_services.live_q(), group=team).select_related(
            "project", "registered_model__project", "endpoint__project", "granted_by")),
        "member_form": TeamMemberForm(team=team),
        "crumbs": _crumbs(("Access", reverse("access:access-overview")), ("Teams", reverse("access:team-list")),
                          (team.name, None)),
    })


@platform_admin_required
@require_POST
def team_member_add(request, pk):
    team = selectors.team_get(pk)
    form = TeamMemberForm(request.POST, team=team)
    if form.is_valid():
        services.team_add_member(actor=request.user, team=team, user=form.cleaned_data["user"])
        messages.success(request, f"{form.cleaned_data['user'].username} added to {team.name}.")
    else:
        messages.error(request, "Choose a user who is not yet a member.")
    return redirect("access:team-detail", pk=team.pk)


@platform_admin_required
@require_POST
def team_member_remove(request, pk, user_pk):
    team = selectors.team_get(pk)
    member = get_object_or_404(team.user_set.all(), pk=user_pk)
    services.team_remove_member(actor=request.user, team=team, user=member)
    messages.success(request, f"{member.username} removed from {team.name}: the team's access ends for them now.")
    return redirect("access:team-detail", pk=team.pk)


@platform_admin_required
def team_edit(request, pk):
    team = selectors.team_get(pk)
    form = TeamForm(request.POST or None, initial={"name": team.name})
    if request.method == "POST" and form.is_valid():
        try:
            services.team_rename(actor=request.user, team=team, name=form.cleaned_data["name"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Team renamed to {team.name}.")
            return redirect("access:team-detail", pk=team.pk)
    detail = reverse("access:team-detail", kwargs={"pk": team.pk})
    return render(request, "console/access/form.html", {
        "title": f"Rename team {team.name}", "form": form, "submit_label": "Rename", "cancel_url": detail,
        "crumbs": _crumbs(("Access", reverse("access:access-overview")), ("Teams", reverse("access:team-list")),
                          (team.name, detail), ("Rename", None)),
    })


@platform_admin_required
def team_delete(request, pk):
    """Confirm, then delete a team: its live grants are revoked first (each audited)."""
    team = selectors.team_get(pk)
    if request.method == "POST":
        removed = services.team_delete(actor=request.user, team=team)
        messages.success(request, f"Team {team.name} deleted: {removed['grants_revoked']} grant"
                                  f"{'s' if removed['grants_revoked'] != 1 else ''} revoked, "
                                  f"{len(removed['members'])} member{'s' if len(removed['members']) != 1 else ''} "
                                  "lose the team's access now.")
        return redirect("access:team-list")
    grants = Grant.objects.filter(grant_services.live_q(), group=team).count()
    members = team.user_set.count()
    return render(request, "generic/confirm.html", {
        "title": f"Delete team {team.name}", "object": team.name,
        "summary": "The team's grants are revoked, then the team and its memberships are deleted.",
        "consequences": [
            f"{grants} live grant{'s' if grants != 1 else ''} to the team end now (each revocation is audited).",
            f"{members} member{'s' if members != 1 else ''} lose what the team gave them; their own grants stay.",
            "The audit trail keeps every event about the team.",
        ],
        "confirm_label": "Delete team", "cancel_url": reverse("access:team-detail", kwargs={"pk": team.pk}),
    })


# --- grants on objects -----------------------------------------------------------------------------

def _object_access(request, *, target, title, crumbs, back_url):
    """The access page of one object: live grants, the add form, and who can access it."""
    form = GrantForm(request.POST or None, role_choices=grant_services.roles_for(type(target)))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            grant = grant_services.grant_create(
                actor=request.user, role=data["role"], target=target, user=data["user"], group=data["team"],
                expires_at=data["expires_at"], reason=data["reason"])
        except ValidationError as exc:
            add_service_errors(form, exc, {"principal": "user"})
        else:
            messages.success(request, f"Granted: {grant}.")
            return redirect(request.path)
    show_ended = request.GET.get("ended") == "1"
    grants = grant_services.grants_on(target, include_ended=show_ended).select_related("granted_by", "revoked_by")
    who = selectors.who_can_access(target)
    inside = selectors.endpoints_of(target)[:ENDPOINT_LINKS] if target._meta.model_name == "project" else []
    return render(request, "console/access/object_access.html", {
        "endpoints": list(inside), "endpoint_links": ENDPOINT_LINKS,
        "title": title, "target": target, "form": form, "grants": list(grants), "who": who,
        "show_ended": show_ended, "crumbs": crumbs, "back_url": back_url,
        "roles": [(value, label, grant_services.actions_for(value, type(target)),
                   grant_services.ROLE_DESCRIPTIONS[value]) for value, label in grant_services.roles_for(type(target))],
    })


def _object_url(name: str, kwargs: dict) -> str | None:
    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        return None


@login_required
def project_access(request, name):
    project = get_visible_or_404(Project.objects.select_related("cluster"), request.user, "manage", name=name)
    back = _object_url("endpoints:project-detail", {"name": project.name})
    return _object_access(request, target=project, title=f"Access to project {project.name}", back_url=back,
                          crumbs=_crumbs(("Projects", _object_url("endpoints:project-list", {})),
                                         (project.name, back), ("Access", None)))


@login_required
def model_access(request, pk):
    model = get_visible_or_404(RegisteredModel.objects.select_related("project"), request.user, "manage", pk=pk)
    back = _object_url("endpoints:model-detail", {"pk": model.pk})
    return _object_access(request, target=model, title=f"Access to model {model.project.name}/{model.name}",
                          back_url=back, crumbs=_crumbs(("Models", _object_url("endpoints:model-list", {})),
                                                        (model.name, back), ("Access", None)))


@login_required
def endpoint_access(request, project, name):
    endpoint = get_visible_or_404(Endpoint.objects.select_related("project", "project__cluster", "status"),
                                  request.user, "manage", project__name=project, name=name)
    back = _object_url("endpoints:endpoint-detail", {"project": project, "name": name})
    return _object_access(request, target=endpoint, title=f"Access to endpoint {project}/{name}", back_url=back,
                          crumbs=_crumbs(("Endpoints", _object_url("endpoints:endpoint-list", {})),
                                         (f"{project}/{name}", back), ("Access", None)))


def _access_url(target) -> str:
    if target._meta.model_name == "project":
        return reverse("access:project-access", kwargs={"name": target.name})
    if target._meta.model_name == "endpoint":
        return reverse("access:endpoint-access", kwargs={"project": target.project.name, "name": target.name})
    return reverse("access:model-access", kwargs={"pk": target.pk})


@login_required
def grant_revoke(request, pk):
    """Confirm, then revoke one grant. A grant on an object the user cannot see is a 404; on
    one they see but may not manage, 403."""
    grant = get_object_or_404(Grant.objects.select_related(
        "user", "group", "project", "registered_model__project", "endpoint__project"), pk=pk)
    target = grant.target
    get_visible_or_404(type(target)._default_manager.all(), request.user, "manage", pk=target.pk)
    form = GrantRevokeForm(request.POST or None)
    back = _access_url(target)
    if request.method == "POST" and form.is_valid():
        grant_services.grant_revoke(actor=request.user, grant=grant, reason=form.cleaned_data["reason"])
        messages.success(request, f"Revoked: {grant}. Access ends now.")
        return redirect(back)
    return render(request, "generic/confirm.html", {
        "title": f"Revoke {grant}", "object": grant, "form": form,
        "summary": "The principal loses this role at once, including cached inference authorizations.",
        "consequences": [f"Granted by {grant.granted_by_name or 'system'} on {grant.created_at:%Y-%m-%d} "
                         f"because: {grant.reason or '—'}"],
        "confirm_label": "Revoke", "cancel_url": back,
    })


# --- check access ----------------------------------------------------------------------------------

@platform_admin_required
def check_access(request):
    form = CheckAccessForm(request.GET or None)
    result = None
    if request.GET and form.is_valid():
        result = selectors.access_check(user=form.cleaned_data["user"], obj=form.cleaned_data["endpoint"],
                                        action=form.cleaned_data["action"])
    return render(request, "console/access/check.html", {
        "title": "Check access", "form": form, "result": result,
        "crumbs": _crumbs(("Access", reverse("access:access-overview")), ("Check access", None)),
    })


# --- API tokens --------------------------------------------------------------------------------------

def _token_form(request, *, holder, cancel_url, title):
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            token, plaintext = tokens.token_create(actor=request.user, user=holder, name=form.cleaned_data["name"],
                                                   scopes=form.cleaned_data["scopes"], expires_at=form.expires_at())
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            # Rendered, never redirected: the plaintext is not kept anywhere (not even the session).
            response = render(request, "console/access/token_created.html", {
                "title": "Copy your new token now", "token": token, "plaintext": plaintext, "holder": holder,
                "back_url": cancel_url,
            })
            response["Cache-Control"] = "no-store"
            return response
    return render(request, "console/access/form.html", {
        "title": title, "form": form, "submit_label": "Create token", "cancel_url": cancel_url,
        "description": "The token is shown once. Store it in a secret manager; the console keeps only a hash.",
    })


@login_required
def token_list(request):
    """Self-service: your API tokens, and a new one."""
    if request.method == "POST":
        return _token_form(request, holder=request.user, cancel_url=reverse("access:token-list"),
                           title="New API token")
    return render(request, "console/access/token_list.html", {
        "title": "API tokens", "tokens": list(selectors.tokens_of(user=request.user)), "form": TokenForm(),
    })


@login_required
@require_POST
def token_revoke(request, pk):
    """Revoke one of your tokens (platform admins: anyone's). Someone else's token is a 404."""
    qs = ApiToken.objects.select_related("user")
    if not is_platform_admin(request.user):
        qs = qs.filter(user=request.user)
    token = get_object_or_404(qs, pk=pk)
    try:
        tokens.token_revoke(actor=request.user, token=token)
    except PermissionDenied:  # pragma: no cover - filtered above
        raise Http404 from None
    messages.success(request, f"Token {token.display_prefix}… ({token.name}) revoked.")
    if token.user_id != request.user.pk:
        return redirect("access:user-detail", pk=token.user_id)
    return redirect("access:token-list")


class InviteAcceptView(auth_views.PasswordResetConfirmView):
    """An invited person sets their password through the one-time link."""

    template_name = "console/access/invite_accept.html"
    success_url = reverse_lazy("login")
    post_reset_login = False

    def get_user(self, uidb64):
        user = super().get_user(uidb64)
        # Service accounts never get a password, whatever link someone crafts.
        return None if user is None or user.is_service_account or not user.is_active else user

    def form_valid(self, form):
        # The password and its audit event commit together (the link is spent either way).
        with transaction.atomic():
            response = super().form_valid(form)
            services.user_password_set_recorded(user=self.user, via="one-time link")
        messages.success(self.request, "Password set. Sign in with it now.")
        return response


# --- identity providers: group mappings and linked identities --------------------------------------

@platform_admin_required
def group_mapping_list(request):
    page = _page(request, selectors.group_mappings())
    return render(request, "console/access/group_mapping_list.html", {
        "title": "Group mappings", "page_obj": page, "object_list": page.object_list,
        "global_role_names": set(GLOBAL_ROLES),
        "crumbs": _crumbs(("Access", reverse("access:access-overview")), ("Group mappings", None)),
    })


@platform_admin_required
def group_mapping_create(request):
    form = GroupMappingForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            identity.group_mapping_create(actor=request.user, source=data["source"],
                                          external_group=data["external_group"], group=data["group"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Members of {data['external_group']} join {data['group'].name} at their "
                                      "next sign-in, re-check or sync.")
            return redirect("access:group-mapping-list")
    return render(request, "console/access/form.html", {
        "title": "Map a provider group", "form": form, "submit_label": "Create mapping",
        "cancel_url": reverse("access:group-mapping-list"),
        "description": "People in the group at the identity provider join the team or global role; they leave it "
                       "when the provider stops reporting the group.",
        "crumbs": _crumbs(("Access", reverse("access:access-overview")),
                          ("Group mappings", reverse("access:group-mapping-list")), ("New", None)),
    })


@platform_admin_required
def group_mapping_delete(request, pk):
    mapping = get_object_or_404(GroupMapping.objects.select_related("group"), pk=pk)
    if request.method == "POST":
        identity.group_mapping_delete(actor=request.user, mapping=mapping)
        messages.success(request, f"Mapping {mapping.external_group} → {mapping.group.name} deleted.")
        return redirect("access:group-mapping-list")
    return render(request, "generic/confirm.html", {
        "title": f"Delete the mapping {mapping.external_group} → {mapping.group.name}", "object": mapping,
        "summary": "The provider group stops giving this team or role.",
        "consequences": ["People it put there leave at their next sign-in, re-check or sync.",
                         "Memberships given by hand are not touched."],
        "confirm_label": "Delete mapping", "cancel_url": reverse("access:group-mapping-list"),
    })


@platform_admin_required
def identity_link(request, pk):
    subject = selectors.user_get(pk)
    form = IdentityLinkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            identity.identity_link(actor=request.user, user=subject, source=data["source"], issuer=data["issuer"],
                                   subject=data["subject"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{subject.username} now signs in with that provider account.")
            return redirect("access:user-detail", pk=subject.pk)
    return render(request, "console/access/form.html", {
        "title": f"Link a provider account to {subject.username}", "form": form, "submit_label": "Link",
        "cancel_url": reverse("access:user-detail", args=[subject.pk]),
        "description": "The provider account then signs in as this console account (the way to let a local "
                       "account sign in through the provider when the user names are the same).",
        "crumbs": _crumbs(("Access", reverse("access:access-overview")), ("Users", reverse("access:user-list")),
                          (subject.username, reverse("access:user-detail", args=[subject.pk])), ("Link", None)),
    })


@platform_admin_required
@require_POST
def identity_unlink(request, pk, identity_pk):
    subject = selectors.user_get(pk)
    linked = get_object_or_404(ExternalIdentity, pk=identity_pk, user=subject)
    identity.identity_unlink(actor=request.user, identity=linked)
    messages.success(request, f"{linked} no longer signs in as {subject.username}.")
    return redirect("access:user-detail", pk=subject.pk)


# --- OpenID Connect sign-in -------------------------------------------------------------------------

NEXT_KEY = "oidc_next"


def _safe_next(request, value: str) -> str:
    if value and url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()},
                                                 require_https=request.is_secure()):
        return value
    return ""


class LoginView(base_views.LoginView):
    """The sign-in page, with a "Sign in with <provider>" button when OpenID Connect is on."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["oidc_enabled"] = oidc.enabled()
        context["oidc_provider_name"] = oidc.provider_name()
        context["local_passwords_admins_only"] = settings.LOCAL_PASSWORD_SIGN_IN == LOCAL_PASSWORDS_ADMINS
        return context


class LogoutView(base_views.LogoutView):
    """Ends the console session and, when the person signed in through a provider that
    supports it, the provider's session too (RP-initiated logout)."""

    def post(self, request, *args, **kwargs):
        id_token = request.session.get(oidc.ID_TOKEN_KEY, "")
        response = super().post(request, *args, **kwargs)
        end_session = oidc.end_session_url(id_token)
        if not end_session:
            return response
        return render(request, "console/access/oidc_signed_out.html", {
            "end_session_url": end_session, "provider_name": oidc.provider_name()})


def oidc_login(request):
    if not oidc.enabled():
        raise Http404("OpenID Connect sign-in is not configured.")
    request.session[NEXT_KEY] = _safe_next(request, request.GET.get("next", ""))
    try:
        return oidc.begin_sign_in(request)
    except oidc.SignInFailed as exc:
        messages.error(request, exc.message)
        return redirect("login")


def oidc_callback(request):
    if not oidc.enabled():
        raise Http404("OpenID Connect sign-in is not configured.")
    next_url = request.session.get(NEXT_KEY, "")
    try:
        oidc.complete_sign_in(request)
    except oidc.SignInFailed as exc:
        messages.error(request, exc.message)
        return redirect("login")
    return redirect(_safe_next(request, next_url) or settings.LOGIN_REDIRECT_URL)


# --- "Try it" (console/access/try_it.py) -------------------------------------------------------------

@login_required
def endpoint_try(request, project: str, name: str):
    """An endpoint's "Try it": GET shows the request editor, POST sends it through the gateway
    as the signed-in user (an htmx fragment, or the whole page without JavaScript). Anyone who
    can see the endpoint may send: the gateway's access check decides, as for any caller."""
    endpoint = get_visible_or_404(endpoint_selectors.endpoint_queryset(), request.user,
                                  project__name=project, name=name)
    context = {"panel": try_it.overview_panel(request, endpoint), "endpoint": endpoint,
               "title": f"Try {endpoint.name}"}
    status = 200
    if request.method == "POST":
        try:
            context["result"] = try_it.endpoint_try(actor=request.user, endpoint=endpoint,
                                                    body=request.POST.get("body", ""))
        except ValidationError as exc:
            context["errors"] = [m for messages_ in exc.message_dict.values() for m in messages_]
            status = 400
        if request.headers.get("HX-Request"):
            return render(request, "console/access/try_it/_result.html", context, status=status)
    return render(request, "console/access/try_it/page.html", context, status=status)
