from django.contrib.auth import get_user_model
from rest_framework import serializers

from console.access.models import ApiToken, Grant, IdentitySource
from console.access.roles import GLOBAL_ROLES


class CurrentUserSerializer(serializers.ModelSerializer):
    """The signed-in principal as the API sees it."""

    global_roles = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "first_name", "last_name", "email", "is_service_account", "global_roles"]
        read_only_fields = fields

    def get_global_roles(self, user) -> list[str]:
        return sorted(group.name for group in user.groups.all())


# --- access control -------------------------------------------------------------------------------


class ApiTokenSerializer(serializers.ModelSerializer):
    """A token as lists show it: never the secret."""

    prefix = serializers.CharField(source="display_prefix", read_only=True)
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    state = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "user", "scopes", "created_at", "expires_at", "last_used_at",
                  "revoked_at", "state"]
        read_only_fields = fields

    def get_state(self, token) -> str:
        return token.state()


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=list(ApiToken.SCOPES)), min_length=1)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    user = serializers.IntegerField(required=False, help_text="A service account's id (platform admins only); "
                                                              "omit for a token of your own.")


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The token itself: shown this once, never again.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class GrantSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    team = serializers.SlugRelatedField(source="group", slug_field="name", read_only=True)
    object_type = serializers.CharField(read_only=True, source="object_kind")
    object_id = serializers.SerializerMethodField()
    object = serializers.CharField(read_only=True, source="object_label")
    state = serializers.SerializerMethodField()

    class Meta:
        model = Grant
        fields = ["id", "user", "team", "role", "object_type", "object_id", "object", "reason", "granted_by_name",
                  "created_at", "expires_at", "revoked_at", "revoked_by_name", "revoke_reason", "state"]
        read_only_fields = fields

    def get_object_id(self, grant) -> int:
        return grant.project_id or grant.registered_model_id or grant.endpoint_id

    def get_state(self, grant) -> str:
        return grant.state()


class GrantCreateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Grant.Role.choices)
    project = serializers.IntegerField(required=False, help_text="Give exactly one of project, model, endpoint.")
    model = serializers.IntegerField(required=False)
    endpoint = serializers.IntegerField(required=False)
    user = serializers.IntegerField(required=False, help_text="Give exactly one of user and team.")
    team = serializers.IntegerField(required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    reason = serializers.CharField(max_length=300)

    def validate(self, data):
        if sum(1 for key in ("project", "model", "endpoint") if data.get(key) is not None) != 1:
            raise serializers.ValidationError({"object": ["Give exactly one of project, model and endpoint."]})
        if sum(1 for key in ("user", "team") if data.get(key) is not None) != 1:
            raise serializers.ValidationError({"principal": ["Give exactly one of user and team."]})
        return data


class RevokeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True)


class UserSerializer(serializers.ModelSerializer):
    global_roles = serializers.SerializerMethodField()
    teams = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "first_name", "last_name", "email", "description", "is_service_account",
                  "is_active", "global_roles", "teams", "date_joined", "last_login"]
        read_only_fields = fields

    def get_global_roles(self, user) -> list[str]:
        return sorted(g.name for g in user.groups.all() if g.name in GLOBAL_ROLES)

    def get_teams(self, user) -> list[str]:
        return sorted(g.name for g in user.groups.all() if g.name not in GLOBAL_ROLES)


class UserCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    is_service_account = serializers.BooleanField(default=False)
    global_roles = serializers.ListField(child=serializers.CharField(), required=False, default=list)


class UserCreatedSerializer(UserSerializer):
    invite_url = serializers.CharField(read_only=True, allow_null=True,
                                       help_text="One-time link where a person sets their password.")

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "invite_url"]
        read_only_fields = fields


class TeamSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=150)
    members = serializers.SerializerMethodField()

    def get_members(self, team) -> list[str]:
        return sorted(u.username for u in team.user_set.all())


class TeamMemberSerializer(serializers.Serializer):
    user = serializers.IntegerField()


class AccessSourceSerializer(serializers.Serializer):
    kind = serializers.CharField()
    description = serializers.CharField()
    team = serializers.CharField(allow_null=True)
    grant_ids = serializers.ListField(child=serializers.IntegerField())
    expires_at = serializers.DateTimeField(allow_null=True)


class AccessCheckSerializer(serializers.Serializer):
    user = serializers.CharField()
    endpoint = serializers.CharField()
    action = serializers.CharField()
    allowed = serializers.BooleanField()
    reason = serializers.CharField()
    valid_until = serializers.DateTimeField(allow_null=True)
    sources = AccessSourceSerializer(many=True)


class PrincipalAccessSerializer(serializers.Serializer):
    principal = serializers.CharField()
    type = serializers.CharField()
    actions = serializers.ListField(child=serializers.CharField())
    reasons = serializers.ListField(child=serializers.CharField())


class WhoCanAccessSerializer(serializers.Serializer):
    object = serializers.CharField()
    principals = PrincipalAccessSerializer(many=True)
    grants = GrantSerializer(many=True)


def source_data(source) -> dict:
    return {"kind": source.kind, "description": source.describe(),
            "team": source.group.name if source.group is not None else None,
            "grant_ids": [g.pk for g in source.grants], "expires_at": source.expires_at}


class GroupMappingSerializer(serializers.Serializer):
    """An identity-provider group mapped to a team or a global role."""

    id = serializers.IntegerField(read_only=True)
    source = serializers.ChoiceField(choices=IdentitySource.choices)
    external_group = serializers.CharField(max_length=300)
    group = serializers.IntegerField(source="group_id", help_text="The team's or global role's id.")
    group_name = serializers.CharField(source="group.name", read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    created_by_name = serializers.CharField(read_only=True)


class ExternalIdentitySerializer(serializers.Serializer):
    """An identity-provider account linked to a console user."""

    id = serializers.IntegerField(read_only=True)
    user = serializers.IntegerField(source="user_id")
    username = serializers.CharField(source="user.username", read_only=True)
    source = serializers.ChoiceField(choices=IdentitySource.choices)
    issuer = serializers.CharField(max_length=300)
    subject = serializers.CharField(max_length=300)
    groups = serializers.ListField(child=serializers.CharField(), read_only=True)
    last_sign_in_at = serializers.DateTimeField(read_only=True)
    last_checked_at = serializers.DateTimeField(read_only=True)
    linked_by_name = serializers.CharField(read_only=True)
