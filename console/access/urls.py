"""Access control's pages (namespace ``access``): users, teams, grants, the access check and
API tokens."""

from django.urls import path

from console.access import views as access

app_name = "access"

urlpatterns = [
    path("access/", access.access_overview, name="access-overview"),
    path("access/users/", access.user_list, name="user-list"),
    path("access/users/new/", access.user_create, name="user-create"),
    path("access/users/<id:pk>/", access.user_detail, name="user-detail"),
    path("access/users/<id:pk>/roles/", access.user_roles, name="user-roles"),
    path("access/users/<id:pk>/deactivate/", access.user_deactivate, name="user-deactivate"),
    path("access/users/<id:pk>/reactivate/", access.user_reactivate, name="user-reactivate"),
    path("access/users/<id:pk>/sign-in-reset/", access.user_sign_in_reset, name="user-sign-in-reset"),
    path("access/users/<id:pk>/unlock/", access.user_unlock, name="user-unlock"),
    path("access/users/<id:pk>/tokens/new/", access.service_token_create, name="service-token-create"),
    path("access/users/<id:pk>/identities/link/", access.identity_link, name="identity-link"),
    path("access/users/<id:pk>/identities/<id:identity_pk>/unlink/", access.identity_unlink,
         name="identity-unlink"),
    path("access/group-mappings/", access.group_mapping_list, name="group-mapping-list"),
    path("access/group-mappings/new/", access.group_mapping_create, name="group-mapping-create"),
    path("access/group-mappings/<id:pk>/delete/", access.group_mapping_delete, name="group-mapping-delete"),
    path("access/teams/", access.team_list, name="team-list"),
    path("access/teams/new/", access.team_create, name="team-create"),
    path("access/teams/<id:pk>/", access.team_detail, name="team-detail"),
    path("access/teams/<id:pk>/edit/", access.team_edit, name="team-edit"),
    path("access/teams/<id:pk>/delete/", access.team_delete, name="team-delete"),
    path("access/teams/<id:pk>/members/", access.team_member_add, name="team-member-add"),
    path("access/teams/<id:pk>/members/<id:user_pk>/remove/", access.team_member_remove,
         name="team-member-remove"),
    path("access/projects/<slug:name>/", access.project_access, name="project-access"),
    path("access/models/<id:pk>/", access.model_access, name="model-access"),
    path("access/endpoints/<slug:project>/<slug:name>/", access.endpoint_access, name="endpoint-access"),
    path("endpoints/<slug:project>/<slug:name>/try/", access.endpoint_try, name="endpoint-try"),
    path("access/grants/<id:pk>/revoke/", access.grant_revoke, name="grant-revoke"),
    path("access/check/", access.check_access, name="check-access"),
    path("account/tokens/", access.token_list, name="token-list"),
    path("account/tokens/<id:pk>/revoke/", access.token_revoke, name="token-revoke"),
    path("accounts/invite/<uidb64>/<token>/", access.InviteAcceptView.as_view(), name="invite-accept"),
]
