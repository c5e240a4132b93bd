"""Identity-provider accounts and group mapping, whatever the sign-in mode (OIDC, LDAP,
gateway header): linking by (issuer, subject), collisions with local accounts, group sync that
adds and removes only what mappings give, and the end of access on a provider's refusal."""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import override_settings
from django.urls import reverse

from audit.models import AuditEvent
from console.access import identity
from console.access.models import ExternalIdentity, GroupMapping
from console.access.roles import AUDITOR, ensure_global_roles
from console.access.tokens import token_create
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

ISSUER = "http://127.0.0.1:9999/oidc"


def _claims(subject="sub-1", username="carol", **extra):
    return identity.Claims(source="oidc", issuer=ISSUER, subject=subject, username=username, **extra)


@pytest.fixture
def ml_team(db):
    return Group.objects.create(name="ML team")


def test_first_sign_in_creates_the_user_linked_by_issuer_and_subject(db):
    user = identity.resolve_identity(_claims(email="carol@example.test", first_name="Carol"))
    assert user.username == "carol" and user.email == "carol@example.test"
    assert not user.has_usable_password()
    link = ExternalIdentity.objects.get(user=user)
    assert (link.issuer, link.subject, link.source) == (ISSUER, "sub-1", "oidc")
    assert AuditEvent.objects.filter(action="identity.user_created", target_id=str(user.pk)).exists()
    # The next sign-in finds the same user by (issuer, sub), even if the user name changed.
    again = identity.resolve_identity(_claims(username="carol.renamed", email="c@example.test"))
    assert again.pk == user.pk
    again.refresh_from_db()
    assert again.email == "c@example.test"


def test_a_user_name_of_a_local_account_is_refused_and_audited_until_an_admin_links(admin_user, alice):
    with pytest.raises(identity.IdentityRefused) as refused:
        identity.resolve_identity(_claims(subject="attacker", username="alice"))
    assert refused.value.reason == "username_collision"
    event = AuditEvent.objects.get(action="identity.sign_in_refused")
    assert event.outcome == "denied" and event.details["subject"] == "attacker"
    assert not ExternalIdentity.objects.exists()

    identity.identity_link(actor=admin_user, user=alice, source="oidc", issuer=ISSUER, subject="alice-sub")
    assert identity.resolve_identity(_claims(subject="alice-sub", username="alice")).pk == alice.pk
    # Another provider account with the same user name is still refused.
    with pytest.raises(identity.IdentityRefused):
        identity.resolve_identity(_claims(subject="attacker", username="alice"))


def test_deactivated_and_service_accounts_are_refused(admin_user, alice, service_account):
    identity.identity_link(actor=admin_user, user=alice, source="oidc", issuer=ISSUER, subject="a")
    alice.is_active = False
    alice.save()
    with pytest.raises(identity.IdentityRefused) as refused:
        identity.resolve_identity(_claims(subject="a", username="alice"))
    assert refused.value.reason == "inactive"
    with pytest.raises(ValidationError):
        identity.identity_link(actor=admin_user, user=service_account, source="oidc", issuer=ISSUER, subject="s")


def test_only_admins_link_and_map(alice, ml_team):
    with pytest.raises(PermissionDenied):
        identity.identity_link(actor=alice, user=alice, source="oidc", issuer=ISSUER, subject="x")
    with pytest.raises(PermissionDenied):
        identity.group_mapping_create(actor=alice, source="oidc", external_group="ml", group=ml_team)


def test_bad_user_names_from_the_provider_are_refused(db):
    with pytest.raises(identity.IdentityRefused) as refused:
        identity.resolve_identity(_claims(username="has spaces!"))
    assert refused.value.reason == "username_invalid"
    with pytest.raises(identity.IdentityRefused):
        identity.resolve_identity(_claims(username=""))


def test_sync_adds_and_removes_only_mapped_memberships(admin_user, ml_team):
    ensure_global_roles()
    auditors = Group.objects.get(name=AUDITOR)
    by_hand = Group.objects.create(name="Hand-made")
    identity.group_mapping_create(actor=admin_user, source="oidc", external_group="ml-engineers", group=ml_team)
    identity.group_mapping_create(actor=admin_user, source="oidc", external_group="compliance", group=auditors)
    user = identity.resolve_identity(_claims())
    user.groups.add(by_hand)

    changes = identity.sync_groups(user=user, source="oidc", external_groups=["ML-Engineers", "compliance", "other"],
                                   via="sign-in", issuer=ISSUER, subject="sub-1")
    assert changes == {"added": sorted(["ML team", AUDITOR]), "removed": []}
    assert set(user.groups.values_list("name", flat=True)) == {"ML team", AUDITOR, "Hand-made"}
    assert ExternalIdentity.objects.get(user=user).groups == ["ML-Engineers", "compliance", "other"]
    # Nothing changes: nothing audited.
    before = AuditEvent.objects.count()
    assert identity.sync_groups(user=user, source="oidc", external_groups=["ml-engineers", "compliance"],
                                via="re-check") == {"added": [], "removed": []}
    assert AuditEvent.objects.count() == before

    changes = identity.sync_groups(user=user, source="oidc", external_groups=["compliance"], via="re-check")
    assert changes == {"added": [], "removed": ["ML team"]}
    assert set(user.groups.values_list("name", flat=True)) == {AUDITOR, "Hand-made"}
    removed = AuditEvent.objects.get(action="identity.group_removed")
    assert removed.details["source"] == "oidc" and removed.details["via"] == "re-check"
    assert removed.details["group"] == "ML team"


def test_sync_never_removes_a_membership_given_by_hand(admin_user, ml_team):
    identity.group_mapping_create(actor=admin_user, source="ldap", external_group="cn=ml,ou=groups", group=ml_team)
    user = UserFactory(username="dora")
    ml_team.user_set.add(user)
    identity.sync_groups(user=user, source="ldap", external_groups=["cn=ml,ou=groups"], via="sync")
    identity.sync_groups(user=user, source="ldap", external_groups=[], via="sync")
    assert ml_team.user_set.filter(pk=user.pk).exists()


def test_membership_given_by_two_sources_stays_while_one_gives_it(admin_user, ml_team):
    identity.group_mapping_create(actor=admin_user, source="ldap", external_group="cn=ml", group=ml_team)
    identity.group_mapping_create(actor=admin_user, source="oidc", external_group="ml", group=ml_team)
    user = UserFactory(username="erin")
    identity.sync_groups(user=user, source="ldap", external_groups=["cn=ml"], via="sync")
    identity.sync_groups(user=user, source="oidc", external_groups=["ml"], via="sign-in")
    identity.sync_groups(user=user, source="ldap", external_groups=[], via="sync")
    assert ml_team.user_set.filter(pk=user.pk).exists()
    identity.sync_groups(user=user, source="oidc", external_groups=[], via="re-check")
    assert not ml_team.user_set.filter(pk=user.pk).exists()


def test_deleting_a_mapping_takes_people_out_at_their_next_sync(admin_user, ml_team):
    mapping = identity.group_mapping_create(actor=admin_user, source="oidc", external_group="ml", group=ml_team)
    user = UserFactory(username="finn")
    identity.sync_groups(user=user, source="oidc", external_groups=["ml"], via="sign-in")
    identity.group_mapping_delete(actor=admin_user, mapping=mapping)
    assert AuditEvent.objects.filter(action="identity.mapping_delete").exists()
    identity.sync_groups(user=user, source="oidc", external_groups=["ml"], via="re-check")
    assert not ml_team.user_set.filter(pk=user.pk).exists()
    assert not GroupMapping.objects.exists()


def test_duplicate_and_blank_mappings_are_refused_with_field_errors(admin_user, ml_team):
    identity.group_mapping_create(actor=admin_user, source="oidc", external_group="ml", group=ml_team)
    with pytest.raises(ValidationError) as duplicate:
        identity.group_mapping_create(actor=admin_user, source="oidc", external_group="ML", group=ml_team)
    assert "external_group" in duplicate.value.message_dict
    with pytest.raises(ValidationError) as blank:
        identity.group_mapping_create(actor=admin_user, source="nope", external_group=" ", group=ml_team)
    assert set(blank.value.message_dict) == {"source", "external_group"}


def test_a_refusal_ends_sessions_and_revokes_tokens(client, alice):
    client.force_login(alice)
    token, _ = token_create(actor=alice, user=alice, name="ci", scopes=["read"])
    result = identity.identity_access_ended(user=alice, source="oidc", via="re-check", reason="refresh refused")
    assert result == {"sessions_ended": 1, "tokens_revoked": 1}
    assert client.get(reverse("home")).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    event = AuditEvent.objects.get(action="identity.access_ended")
    assert event.details["reason"] == "refresh refused" and event.outcome == "denied"
    alice.refresh_from_db()
    assert alice.is_active  # reinstated at the provider, the person signs in again


@override_settings(LOCAL_PASSWORD_SIGN_IN="admins")
def test_password_sign_in_can_be_kept_for_break_glass_admins_only(client, alice, admin_user):
    response = client.post(reverse("login"), {"username": "alice", "password": DEFAULT_PASSWORD})
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    response = client.post(reverse("login"), {"username": admin_user.username, "password": DEFAULT_PASSWORD})
    assert response.status_code == 302
