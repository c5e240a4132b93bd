from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from console.access.api.serializers import CurrentUserSerializer


class CurrentUserView(APIView):
    """Who am I: the principal behind this session or token."""

    @extend_schema(responses=CurrentUserSerializer)
    def get(self, request):
        return Response(CurrentUserSerializer(request.user).data)
