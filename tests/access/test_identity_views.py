"""Admin pages and API for identity providers: group mappings (list, create, delete) and the
provider accounts linked to a user (link — the fix for a user-name collision — and unlink).
Bad input gets field errors, never a 500; every change is audited. Who may reach them is in
the permission matrix (platform admins only)."""

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditEvent
from console.access import identity
from console.access.models import ExternalIdentity, GroupMapping

pytestmark = pytest.mark.django_db
ISSUER = "https://idp.example.test"


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def team(db):
    return Group.objects.create(name="ml")


def test_admin_maps_a_group_on_the_page_and_sees_it_listed(admin_client, team):
    response = admin_client.post("/access/group-mappings/new/",
                                 {"source": "oidc", "external_group": " ML-Team ", "group": team.pk})
    assert response.status_code == 302
    mapping = GroupMapping.objects.get()
    assert (mapping.source, mapping.external_group, mapping.group) == ("oidc", "ML-Team", team)
    page = admin_client.get("/access/group-mappings/").content.decode()
    assert "ML-Team" in page and "ml" in page
    assert AuditEvent.objects.filter(action="identity.mapping_create").exists()


def test_a_duplicate_or_blank_mapping_is_a_form_error(admin_client, team, admin_user):
    identity.group_mapping_create(actor=admin_user, source="oidc", external_group="ml-team", group=team)
    duplicate = admin_client.post("/access/group-mappings/new/",
                                  {"source": "oidc", "external_group": "ML-TEAM", "group": team.pk})
    assert duplicate.status_code == 200
    assert "already mapped" in duplicate.content.decode()
    blank = admin_client.post("/access/group-mappings/new/", {"source": "nope", "external_group": "", "group": ""})
    assert blank.status_code == 200 and blank.context["form"].errors.keys() >= {"source", "external_group", "group"}
    assert GroupMapping.objects.count() == 1


def test_deleting_a_mapping_asks_first_then_deletes_and_audits(admin_client, team, admin_user):
    mapping = identity.group_mapping_create(actor=admin_user, source="ldap", external_group="cn=ml", group=team)
    assert "Delete mapping" in admin_client.get(f"/access/group-mappings/{mapping.pk}/delete/").content.decode()
    assert admin_client.post(f"/access/group-mappings/{mapping.pk}/delete/").status_code == 302
    assert not GroupMapping.objects.exists()
    assert AuditEvent.objects.filter(action="identity.mapping_delete").exists()
    assert admin_client.post(f"/access/group-mappings/{mapping.pk}/delete/").status_code == 404


def test_user_page_lists_linked_accounts_and_links_and_unlinks(admin_client, alice, admin_user):
    page = admin_client.get(f"/access/users/{alice.pk}/").content.decode()
    assert "Signs in with a console password only" in page
    linked = admin_client.post(f"/access/users/{alice.pk}/identities/link/",
                               {"source": "oidc", "issuer": ISSUER, "subject": "alice-at-idp"})
    assert linked.status_code == 302
    link = ExternalIdentity.objects.get(user=alice)
    ExternalIdentity.objects.filter(pk=link.pk).update(groups=["Data", "Staff"])
    page = admin_client.get(f"/access/users/{alice.pk}/").content.decode()
    assert "alice-at-idp" in page and ISSUER in page and "Data, Staff" in page
    # The same provider account cannot be linked twice.
    again = admin_client.post(f"/access/users/{admin_user.pk}/identities/link/",
                              {"source": "oidc", "issuer": ISSUER, "subject": "alice-at-idp"})
    assert again.status_code == 200 and "Already linked to alice" in again.content.decode()
    assert admin_client.post(f"/access/users/{alice.pk}/identities/{link.pk}/unlink/").status_code == 302
    assert not ExternalIdentity.objects.exists()
    assert AuditEvent.objects.filter(action="identity.unlink", target_id=str(alice.pk)).exists()


def test_unlink_of_another_users_account_is_404(admin_client, alice, bob, admin_user):
    link = identity.identity_link(actor=admin_user, user=alice, source="oidc", issuer=ISSUER, subject="a")
    assert admin_client.post(f"/access/users/{bob.pk}/identities/{link.pk}/unlink/").status_code == 404
    assert ExternalIdentity.objects.filter(pk=link.pk).exists()


def test_api_creates_lists_and_deletes_mappings(admin_client, team):
    created = admin_client.post("/api/v1/group-mappings/", {"source": "header", "external_group": "ml",
                                                           "group": team.pk}, content_type="application/json")
    assert created.status_code == 201
    assert created.json()["group_name"] == "ml"
    listed = admin_client.get("/api/v1/group-mappings/").json()
    items = listed["results"] if isinstance(listed, dict) else listed
    assert [m["external_group"] for m in items] == ["ml"]
    duplicate = admin_client.post("/api/v1/group-mappings/", {"source": "header", "external_group": "ML",
                                                             "group": team.pk}, content_type="application/json")
    assert duplicate.status_code == 400 and "external_group" in str(duplicate.json())
    missing = admin_client.post("/api/v1/group-mappings/", {"source": "oidc", "external_group": "x", "group": 999999},
                                content_type="application/json")
    assert missing.status_code == 400 and "group" in str(missing.json())
    assert admin_client.delete(f"/api/v1/group-mappings/{created.json()['id']}/").status_code == 204
    assert not GroupMapping.objects.exists()


def test_api_links_lists_and_unlinks_identities(admin_client, alice):
    created = admin_client.post("/api/v1/identities/", {"user": alice.pk, "source": "oidc", "issuer": ISSUER,
                                                       "subject": "s-1"}, content_type="application/json")
    assert created.status_code == 201 and created.json()["username"] == "alice"
    listed = admin_client.get(f"/api/v1/identities/?user={alice.pk}").json()
    items = listed["results"] if isinstance(listed, dict) else listed
    assert [i["subject"] for i in items] == ["s-1"]
    assert admin_client.get("/api/v1/identities/?user=x").status_code == 400
    assert admin_client.delete(f"/api/v1/identities/{created.json()['id']}/").status_code == 204
    assert not ExternalIdentity.objects.exists()


def test_people_who_are_not_admins_cannot_map_groups(client, alice, team):
    client.force_login(alice)
    assert client.post("/access/group-mappings/new/", {"source": "oidc", "external_group": "g",
                                                       "group": team.pk}).status_code == 403
    assert client.post("/api/v1/group-mappings/", {"source": "oidc", "external_group": "g", "group": team.pk},
                       content_type="application/json").status_code == 403
    assert not GroupMapping.objects.exists()
