from django.contrib.auth import get_user_model
from rest_framework import serializers


class CurrentUserSerializer(serializers.ModelSerializer):
    """The signed-in principal as the API sees it."""

    global_roles = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "first_name", "last_name", "email", "is_service_account", "global_roles"]
        read_only_fields = fields

    def get_global_roles(self, user) -> list[str]:
        return sorted(group.name for group in user.groups.all())
