"""``/api/v1/`` routes of access control:

- ``tokens/``: your API tokens (platform admins: also service accounts' with ``?user=<id>``);
  creating returns the token once; DELETE revokes. Tokens cannot mint or revoke tokens.
- ``grants/``: grants on objects you may manage; create, revoke (``POST grants/{id}/revoke/``).
- ``users/`` and ``teams/`` (platform admins): accounts, deactivation, team membership.
- ``group-mappings/`` and ``identities/`` (platform admins): identity-provider groups mapped to
  teams and global roles; provider accounts linked to console users (link, unlink).
- ``access/check/`` (platform admins): principal + endpoint + action → allowed, with reasons.
- ``access/endpoints/{id}/``, ``access/projects/{id}/``: who can access the object and why
  (its managers), through the chokepoint filter backend and permission class.

Writes go through ``console.access.grants``, ``console.access.services`` and ``console.access.tokens`` (audited).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from console.access import grants as grant_services
from console.access import identity, selectors, services, tokens
from console.access.api.serializers import (
    AccessCheckSerializer,
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    ExternalIdentitySerializer,
    GrantCreateSerializer,
    GrantSerializer,
    GroupMappingSerializer,
    RevokeSerializer,
    TeamMemberSerializer,
    TeamSerializer,
    UserCreatedSerializer,
    UserCreateSerializer,
    UserSerializer,
    WhoCanAccessSerializer,
    source_data,
)
from console.access.models import ApiToken, ExternalIdentity, Grant
from console.access.roles import GLOBAL_ROLES
from console.api.permissions import IsPlatformAdmin
from console.api.viewsets import ProtectedGenericViewSet
from console.ids import query_id
from console.permissions import is_platform_admin, visible
from endpoints.models import Endpoint, Project, RegisteredModel

# --- tokens -----------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Your API tokens", parameters=[
        OpenApiParameter("user", OpenApiTypes.INT, description="A service account's id (platform admins).")]),
    retrieve=extend_schema(summary="One API token"),
    destroy=extend_schema(summary="Revoke an API token", responses={200: ApiTokenSerializer}),
)
class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                      viewsets.GenericViewSet):
    """API tokens; the secret is returned once, by create."""

    serializer_class = ApiTokenSerializer
    queryset = ApiToken.objects.none()
    token_writes_allowed = False  # a token never mints or revokes tokens

    def get_queryset(self):
        user = self.request.user
        qs = ApiToken.objects.select_related("user")
        if is_platform_admin(user):
            wanted = self.request.query_params.get("user", "")
            if self.action == "list":
                if wanted:
                    return qs.filter(user_id=query_id(self.request.query_params, "user")).order_by("-created_at")
                return qs.filter(user=user).order_by("-created_at")
            return qs.order_by("-created_at")
        return qs.filter(user=user).order_by("-created_at")

    @extend_schema(summary="Create an API token", request=ApiTokenCreateSerializer,
                   responses={201: ApiTokenCreatedSerializer},
                   description="For yourself, or (platform admins) for a service account. The response carries "
                               "the token once; store it, the console keeps only a hash.")
    def create(self, request):
        serializer = ApiTokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        holder = request.user
        if data.get("user") is not None and data["user"] != request.user.pk:
            holder = get_user_model().objects.filter(pk=data["user"]).first()
            if holder is None or not is_platform_admin(request.user):
                raise ValidationError({"user": ["No such service account."]})
        token, plaintext = tokens.token_create(actor=request.user, user=holder, name=data["name"],
                                               scopes=data["scopes"], expires_at=data.get("expires_at"))
        body = ApiTokenCreatedSerializer(token).data | {"token": plaintext}
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response

    def destroy(self, request, *args, **kwargs):
        token = tokens.token_revoke(actor=request.user, token=self.get_object())
        return Response(ApiTokenSerializer(token).data)


# --- grants -----------------------------------------------------------------------------------------

GRANT_FILTERS = [
    OpenApiParameter("project", OpenApiTypes.INT, description="Grants on this project (id)."),
    OpenApiParameter("endpoint", OpenApiTypes.INT, description="Grants on this endpoint (id)."),
    OpenApiParameter("model", OpenApiTypes.INT, description="Grants on this registered model (id)."),
    OpenApiParameter("user", OpenApiTypes.INT, description="Grants to this user (id)."),
    OpenApiParameter("team", OpenApiTypes.INT, description="Grants to this team (id)."),
    OpenApiParameter("ended", OpenApiTypes.BOOL, description="Include revoked and expired grants."),
]


def _int_param(params, name: str) -> int | None:
    """An id in the query string (``console.ids``: 400 on the field when it is not one)."""
    return query_id(params, name)


@extend_schema_view(list=extend_schema(summary="Grants you may manage", parameters=GRANT_FILTERS),
                    retrieve=extend_schema(summary="One grant"))
class GrantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Grants: a role given to a user or team on a project, registered model or endpoint."""

    serializer_class = GrantSerializer
    queryset = Grant.objects.none()

    def get_queryset(self):
        params = self.request.query_params
        qs = selectors.grants_visible_to(user=self.request.user,
                                         include_ended=self.action != "list" or params.get("ended") in ("1", "true"))
        for param, field in (("project", "project_id"), ("endpoint", "endpoint_id"),
                             ("model", "registered_model_id"), ("user", "user_id"), ("team", "group_id")):
            value = _int_param(params, param) if self.action == "list" else None
            if value is not None:
                qs = qs.filter(**{field: value})
        return qs.order_by("-created_at", "-id")

    @extend_schema(summary="Grant a role", request=GrantCreateSerializer, responses={201: GrantSerializer},
                   description="Needs the manage permission on the object (Owner, or platform admin). An object "
                               "you cannot see is refused as nonexistent.")
    def create(self, request):
        serializer = GrantCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        for key, model in (("project", Project), ("model", RegisteredModel), ("endpoint", Endpoint)):
            if data.get(key) is not None:
                target = visible(model.objects.all(), request.user, "view").filter(pk=data[key]).first()
                if target is None:
                    raise ValidationError({key: [f"No {model._meta.verbose_name} with id {data[key]}."]})
        user = group = None
        if data.get("user") is not None:
            user = get_user_model().objects.filter(pk=data["user"]).first()
            if user is None:
                raise ValidationError({"user": ["No such user."]})
        else:
            group = Group.objects.exclude(name__in=list(GLOBAL_ROLES)).filter(pk=data["team"]).first()
            if group is None:
                raise ValidationError({"team": ["No such team."]})
        grant = grant_services.grant_create(actor=request.user, role=data["role"], target=target, user=user,
                                            group=group, expires_at=data.get("expires_at"), reason=data["reason"])
        return Response(GrantSerializer(self.get_queryset().get(pk=grant.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Revoke a grant", request=RevokeSerializer, responses={200: GrantSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        serializer = RevokeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        grant = grant_services.grant_revoke(actor=request.user, grant=self.get_object(),
                                            reason=serializer.validated_data.get("reason", ""))
        return Response(GrantSerializer(self.get_queryset().get(pk=grant.pk)).data)


# --- users and teams (platform admins) -----------------------------------------------------------------------

@extend_schema_view(list=extend_schema(summary="Users and service accounts"), retrieve=extend_schema(summary="One user"))
class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """People and service accounts (platform admins)."""

    serializer_class = UserSerializer
    permission_classes = [IsAuthenticated, IsPlatformAdmin]

    def get_queryset(self):
        return selectors.user_list(search=self.request.query_params.get("search", "").strip())

    @extend_schema(summary="Create a user or service account", request=UserCreateSerializer,
                   responses={201: UserCreatedSerializer},
                   description="A person gets a one-time link to set a password (invite_url); a service account "
                               "never signs in and uses API tokens.")
    def create(self, request):
        serializer = UserCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_create(actor=request.user, **serializer.validated_data)
        invite = None if user.is_service_account else services.user_invite_link(
            user=user, base_url=services.site_root(request))
        data = UserSerializer(self.get_queryset().get(pk=user.pk)).data | {"invite_url": invite}
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Deactivate an account", request=RevokeSerializer, responses={200: UserSerializer},
                   description="Ends its sessions and revokes its API tokens at once.")
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        serializer = RevokeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_deactivate(actor=request.user, user=self.get_object(),
                                        reason=serializer.validated_data.get("reason", ""))
        return Response(UserSerializer(self.get_queryset().get(pk=user.pk)).data)

    @extend_schema(summary="Reactivate an account", request=None, responses={200: UserSerializer})
    @action(detail=True, methods=["post"])
    def reactivate(self, request, pk=None):
        user = services.user_reactivate(actor=request.user, user=self.get_object())
        return Response(UserSerializer(self.get_queryset().get(pk=user.pk)).data)


@extend_schema_view(list=extend_schema(summary="Teams"), retrieve=extend_schema(summary="One team"))
class TeamViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Teams (groups other than the global roles) and their members (platform admins)."""

    serializer_class = TeamSerializer
    permission_classes = [IsAuthenticated, IsPlatformAdmin]

    def get_queryset(self):
        return selectors.teams().prefetch_related(
            Prefetch("user_set", queryset=get_user_model().objects.order_by("username")))

    @extend_schema(summary="Create a team", request=TeamSerializer, responses={201: TeamSerializer})
    def create(self, request):
        serializer = TeamSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        team = services.team_create(actor=request.user, name=serializer.validated_data["name"])
        return Response(TeamSerializer(self.get_queryset().get(pk=team.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Rename a team", request=TeamSerializer, responses={200: TeamSerializer})
    def partial_update(self, request, pk=None):
        team = self.get_object()
        serializer = TeamSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.team_rename(actor=request.user, team=team, name=serializer.validated_data["name"])
        return Response(TeamSerializer(self.get_queryset().get(pk=team.pk)).data)

    @extend_schema(summary="Rename a team", request=TeamSerializer, responses={200: TeamSerializer})
    def update(self, request, pk=None):
        return self.partial_update(request, pk=pk)

    @extend_schema(summary="Delete a team", request=None, responses={204: None},
                   description="Its live grants are revoked first (each audited as a revocation), then the team "
                               "and its memberships are deleted.")
    def destroy(self, request, pk=None):
        services.team_delete(actor=request.user, team=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="Add a member", request=TeamMemberSerializer, responses={200: TeamSerializer})
    @action(detail=True, methods=["post"])
    def members(self, request, pk=None):
        team = self.get_object()
        serializer = TeamMemberSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = get_user_model().objects.filter(pk=serializer.validated_data["user"]).first()
        if user is None:
            raise ValidationError({"user": ["No such user."]})
        services.team_add_member(actor=request.user, team=team, user=user)
        return Response(TeamSerializer(self.get_queryset().get(pk=team.pk)).data)

    @extend_schema(summary="Remove a member", request=None, responses={200: TeamSerializer})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<user_id>\d+)")
    def remove_member(self, request, pk=None, user_id=None):
        team = self.get_object()
        user = get_object_or_404(team.user_set.all(), pk=user_id)
        services.team_remove_member(actor=request.user, team=team, user=user)
        return Response(TeamSerializer(self.get_queryset().get(pk=team.pk)).data)


# --- identity providers ----------------------------------------------------------------------------------


@extend_schema_view(list=extend_schema(summary="Group mappings"), retrieve=extend_schema(summary="One group mapping"),
                    destroy=extend_schema(summary="Delete a group mapping"))
class GroupMappingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                          viewsets.GenericViewSet):
    """Identity-provider groups mapped to teams and global roles (platform admins)."""

    serializer_class = GroupMappingSerializer
    permission_classes = [IsAuthenticated, IsPlatformAdmin]

    def get_queryset(self):
        return selectors.group_mappings()

    @extend_schema(summary="Map a provider group", responses={201: GroupMappingSerializer})
    def create(self, request):
        serializer = GroupMappingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        group = Group.objects.filter(pk=data["group_id"]).first()
        if group is None:
            raise ValidationError({"group": ["No such team or global role."]})
        mapping = identity.group_mapping_create(actor=request.user, source=data["source"],
                                                external_group=data["external_group"], group=group)
        return Response(GroupMappingSerializer(self.get_queryset().get(pk=mapping.pk)).data,
                        status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        identity.group_mapping_delete(actor=self.request.user, mapping=instance)


@extend_schema_view(
    list=extend_schema(summary="Linked identity-provider accounts", parameters=[
        OpenApiParameter("user", OpenApiTypes.INT, description="Only this user's.")]),
    retrieve=extend_schema(summary="One linked account"),
    destroy=extend_schema(summary="Unlink an identity-provider account"),
)
class ExternalIdentityViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                              viewsets.GenericViewSet):
    """Identity-provider accounts linked to console users; link one to an existing account
    (when user names collide) or unlink it (platform admins)."""

    serializer_class = ExternalIdentitySerializer
    permission_classes = [IsAuthenticated, IsPlatformAdmin]

    def get_queryset(self):
        qs = ExternalIdentity.objects.select_related("user").order_by("user__username", "source", "issuer")
        wanted = self.request.query_params.get("user", "")
        if self.action == "list" and wanted:
            qs = qs.filter(user_id=query_id(self.request.query_params, "user"))
        return qs

    @extend_schema(summary="Link an identity-provider account", responses={201: ExternalIdentitySerializer})
    def create(self, request):
        serializer = ExternalIdentitySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = get_user_model().objects.filter(pk=data["user_id"]).first()
        if user is None:
            raise ValidationError({"user": ["No such user."]})
        linked = identity.identity_link(actor=request.user, user=user, source=data["source"],
                                        issuer=data["issuer"], subject=data["subject"])
        return Response(ExternalIdentitySerializer(self.get_queryset().get(pk=linked.pk)).data,
                        status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        identity.identity_unlink(actor=self.request.user, identity=instance)


# --- explanations -------------------------------------------------------------------------------------------

class AccessCheckView(APIView):
    """Principal + endpoint + action → allowed or denied, with the reason (platform admins)."""

    permission_classes = [IsAuthenticated, IsPlatformAdmin]

    @extend_schema(summary="Check access", responses={
        200: AccessCheckSerializer, 404: OpenApiResponse(description="No user or no endpoint with that id.")},
        parameters=[
        OpenApiParameter("user", OpenApiTypes.INT, required=True, description="The principal's id."),
        OpenApiParameter("endpoint", OpenApiTypes.INT, required=True, description="The endpoint's id."),
        OpenApiParameter("action", OpenApiTypes.STR, description="view, deploy, infer (default) or manage."),
    ])
    def get(self, request):
        params = request.query_params
        user_id, endpoint_id = _int_param(params, "user"), _int_param(params, "endpoint")
        errors = {name: ["Required."] for name, value in (("user", user_id), ("endpoint", endpoint_id)) if value is None}
        act = params.get("action", "infer")
        if act not in selectors.ACTIONS:
            errors["action"] = [f"One of {', '.join(selectors.ACTIONS)}."]
        if errors:
            raise ValidationError(errors)
        user = get_object_or_404(get_user_model(), pk=user_id)
        endpoint = get_object_or_404(Endpoint.objects.select_related("project"), pk=endpoint_id)
        result = selectors.access_check(user=user, obj=endpoint, action=act)
        return Response(AccessCheckSerializer({
            "user": user.username, "endpoint": f"{endpoint.project.name}/{endpoint.name}", "action": act,
            "allowed": result.allowed, "reason": result.reason, "valid_until": result.valid_until,
            "sources": [source_data(s) for s in result.sources],
        }).data)


class _WhoCanAccessViewSet(mixins.RetrieveModelMixin, ProtectedGenericViewSet):
    """Who can access the object and why (its managers): invisible → 404, no manage → 403."""

    serializer_class = WhoCanAccessSerializer
    action_permissions = {"retrieve": "manage"}

    def retrieve(self, request, *args, **kwargs):
        obj = self.get_object()
        who = selectors.who_can_access(obj)
        principals = [{"principal": e.principal.username, "type": "service account" if e.principal.is_service_account
                       else "user", "actions": e.action_list, "reasons": e.reasons} for e in who["users"]]
        principals += [{"principal": t.principal.name, "type": "team", "actions": t.action_list, "reasons": t.reasons}
                       for t in who["teams"]]
        label = selectors._object_label(obj)
        return Response(WhoCanAccessSerializer({"object": label, "principals": principals,
                                                "grants": who["grants"]}).data)


@extend_schema_view(retrieve=extend_schema(summary="Who can access this endpoint and why"))
class EndpointAccessViewSet(_WhoCanAccessViewSet):
    queryset = Endpoint.objects.select_related("project")


@extend_schema_view(retrieve=extend_schema(summary="Who can access this project and why"))
class ProjectAccessViewSet(_WhoCanAccessViewSet):
    queryset = Project.objects.all()


def register(router) -> None:
    router.register("tokens", ApiTokenViewSet, basename="api-token")
    router.register("grants", GrantViewSet, basename="api-grant")
    router.register("users", UserViewSet, basename="api-user")
    router.register("teams", TeamViewSet, basename="api-team")
    router.register("group-mappings", GroupMappingViewSet, basename="api-group-mapping")
    router.register("identities", ExternalIdentityViewSet, basename="api-identity")
    router.register("access/endpoints", EndpointAccessViewSet, basename="api-endpoint-access")
    router.register("access/projects", ProjectAccessViewSet, basename="api-project-access")

