"""LDAP sign-in and the periodic LDAP sync against a real OpenLDAP slapd started for this module
(tests/fixtures/ldap.py): real binds through the sign-in page, groups mirrored into mapped teams,
membership and lock changes made with ldapmodify and picked up by the next sync."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from console.access import identity
from console.access.models import ExternalIdentity
from console.access.roles import AUDITOR, ensure_global_roles
from console.access.tasks import ldap_sync_task
from console.access.tokens import token_create
from tests.factories import DEFAULT_PASSWORD
from tests.fixtures.ldap import MAX_FAILURES, group_dn, password_of, person_dn

pytestmark = pytest.mark.django_db

BACKEND = "console.access.ldap.LdapBackend"


@pytest.fixture
def directory(slapd, settings):
    """The console configured for this module's slapd, as LDAP_SERVER_URI=… would configure it."""
    for name, value in slapd.settings().items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, BACKEND]
    return slapd


@pytest.fixture
def ml_team(admin_user):
    team = Group.objects.create(name="ML team")
    identity.group_mapping_create(actor=admin_user, source="ldap", external_group=group_dn("ml-engineers"), group=team)
    return team


def _sign_in(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def _groups_of(username):
    return set(Group.objects.filter(user__username=username).values_list("name", flat=True))


def _sync():
    out = StringIO()
    call_command("ldap_sync", stdout=out)
    return out.getvalue()


def test_ldap_is_off_unless_a_server_is_configured(settings):
    assert not settings.LDAP_SERVER_URI
    assert BACKEND not in settings.AUTHENTICATION_BACKENDS


def test_sign_in_binds_to_the_directory_and_mirrors_mapped_groups_only(client, directory, ml_team, admin_user):
    ensure_global_roles()
    identity.group_mapping_create(actor=admin_user, source="ldap", external_group=group_dn("auditors"),
                                  group=Group.objects.get(name=AUDITOR))

    response = _sign_in(client, "dana", password_of("dana"))

    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert client.get(reverse("home")).status_code == 200
    link = ExternalIdentity.objects.select_related("user").get(source="ldap")
    assert (link.issuer, link.subject) == (directory.uri, person_dn("dana"))
    user = link.user
    assert (user.username, user.email, user.first_name, user.last_name) == ("dana", "dana@example.test", "Dana", "Scully")
    assert not user.has_usable_password()
    # Mapped groups became teams and roles; kitchen-staff is mapped to nothing and created nothing.
    assert _groups_of("dana") == {"ML team", AUDITOR}
    assert not Group.objects.filter(name__icontains="kitchen").exists()
    assert group_dn("kitchen-staff") in link.groups
    added = AuditEvent.objects.filter(action="identity.group_added", target_id=str(user.pk))
    assert {e.details["group"] for e in added} == {"ML team", AUDITOR}
    assert {e.details["source"] for e in added} == {"ldap"} and {e.details["via"] for e in added} == {"sign-in"}

    # Signing in again finds the same account through the link.
    client.logout()
    assert _sign_in(client, "DANA", password_of("dana")).status_code == 302
    assert ExternalIdentity.objects.filter(source="ldap").count() == 1


def test_wrong_password_is_refused_and_creates_nobody(client, directory, ml_team):
    response = _sign_in(client, "eli", "not-the-password")

    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert "Please enter a correct" in response.content.decode()
    assert not ExternalIdentity.objects.exists()
    assert AuditEvent.objects.filter(action="login.failed", actor_name="eli").exists()
    # Unknown people are refused the same way.
    assert _sign_in(client, "nobody", "whatever").status_code == 200


def test_a_user_name_of_a_local_account_is_refused_with_the_reason_on_the_page(client, directory, alice):
    response = _sign_in(client, "alice", password_of("alice"))

    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert "exists and is not linked to this sign-in" in response.content.decode()
    event = AuditEvent.objects.get(action="identity.sign_in_refused")
    assert event.details["reason"] == "username_collision" and event.details["source"] == "ldap"
    assert event.details["subject"] == person_dn("alice")
    # The local account's password still works.
    assert _sign_in(client, "alice", DEFAULT_PASSWORD).status_code == 302


def test_a_person_removed_from_a_group_loses_the_team_at_the_next_sync(client, directory, ml_team):
    assert _sign_in(client, "eli", password_of("eli")).status_code == 302
    assert _groups_of("eli") == {"ML team"}

    directory.modify(f"dn: {group_dn('ml-engineers')}\nchangetype: modify\ndelete: member\n"
                     f"member: {person_dn('eli')}\n")
    assert _groups_of("eli") == {"ML team"}  # nothing changes before the sync
    output = _sync()

    assert _groups_of("eli") == set()
    assert "groups changed: 1" in output
    removed = AuditEvent.objects.get(action="identity.group_removed")
    assert removed.details["via"] == "sync" and removed.details["source"] == "ldap"
    assert removed.details["group"] == "ML team"
    # Put back in the directory, the next sync gives the team back.
    # (This time through the beat task, which reports its counts.)
    directory.modify(f"dn: {group_dn('ml-engineers')}\nchangetype: modify\nadd: member\nmember: {person_dn('eli')}\n")
    counts = ldap_sync_task.delay().get()
    assert counts["checked"] == 1 and counts["groups_changed"] == 1 and counts["unreachable"] == 0
    assert _groups_of("eli") == {"ML team"}


def test_a_person_the_directory_locks_cannot_sign_in_and_their_session_ends_at_the_sync(
        client, directory, ml_team):
    # gina signs in at her desk and makes an API token.
    assert _sign_in(client, "gina", password_of("gina")).status_code == 302
    gina = ExternalIdentity.objects.get(subject=person_dn("gina")).user
    token, _ = token_create(actor=gina, user=gina, name="notebook", scopes=["read"])

    # Someone guesses her password from elsewhere: the directory's password policy locks her.
    elsewhere = Client()
    for _ in range(MAX_FAILURES):
        assert _sign_in(elsewhere, "gina", "guess").status_code == 200
    assert directory.read(person_dn("gina"), "pwdAccountLockedTime")["pwdAccountLockedTime"]
    # Now even the right password is refused: the directory refuses the bind.
    response = _sign_in(elsewhere, "gina", password_of("gina"))
    assert response.status_code == 200 and "_auth_user_id" not in elsewhere.session

    # Her open session lasts until the sync, which ends it and revokes her token.
    assert client.get(reverse("home")).status_code == 200
    output = _sync()
    assert "access ended: 1" in output and "locked: 1" in output
    assert client.get(reverse("home")).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    event = AuditEvent.objects.get(action="identity.access_ended", target_id=str(gina.pk))
    assert event.details["via"] == "sync" and "locked" in event.details["reason"]
    # Still locked at the next pass: nothing left to end, nothing audited again.
    assert "access ended: 0" in _sync()
    assert AuditEvent.objects.filter(action="identity.access_ended").count() == 1

    # The directory's admin unlocks her: she signs in again.
    directory.modify(f"dn: {person_dn('gina')}\nchangetype: modify\ndelete: pwdAccountLockedTime\n")
    assert _sign_in(elsewhere, "gina", password_of("gina")).status_code == 302


def test_a_person_removed_from_the_directory_loses_access_and_teams(client, directory, ml_team):
    assert _sign_in(client, "hank", password_of("hank")).status_code == 302
    hank = ExternalIdentity.objects.get(subject=person_dn("hank")).user

    directory.modify(f"dn: {group_dn('ml-engineers')}\nchangetype: modify\ndelete: member\n"
                     f"member: {person_dn('hank')}\n\n"
                     f"dn: {person_dn('hank')}\nchangetype: delete\n")
    output = _sync()

    assert "gone: 1" in output and "access ended: 1" in output
    assert client.get(reverse("home")).status_code == 302
    assert _groups_of("hank") == set()
    hank.refresh_from_db()
    assert hank.is_active  # the account stays (its audit history, a possible return)


def test_an_unreachable_directory_changes_nobody(client, directory, ml_team, settings):
    assert _sign_in(client, "dana", password_of("dana")).status_code == 302
    settings.LDAP_SERVER_URI = "ldap://127.0.0.1:1/"  # nothing listens there
    settings.LDAP_TIMEOUT_SECONDS = 2

    from console.access.ldap import ldap_sync

    report = ldap_sync()

    assert report.unreachable == 1 and report.access_ended == 0
    assert _groups_of("dana") == {"ML team"}
    assert client.get(reverse("home")).status_code == 200
    assert not AuditEvent.objects.filter(action__in=["identity.access_ended", "identity.group_removed"]).exists()


def test_dn_template_mode_signs_in_too(client, directory, ml_team, settings):
    settings.LDAP_USER_DN_TEMPLATE = "uid=%(user)s,ou=people,dc=example,dc=test"
    settings.LDAP_USERNAME_ATTR = ""

    assert _sign_in(client, "eli", password_of("eli")).status_code == 302
    assert ExternalIdentity.objects.get(source="ldap").subject == person_dn("eli")
    assert _groups_of("eli") == {"ML team"}


def test_ldap_settings_take_the_bind_password_from_a_file_and_refuse_half_a_configuration(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    secret = tmp_path / "bind-password"
    secret.write_text("s3cret-from-a-secret\n")
    clean = {k: v for k, v in os.environ.items()
             if k not in {"DJANGO_SETTINGS_MODULE", "PYTEST_CURRENT_TEST"} and not k.startswith("LDAP_")}
    clean.update(DEBUG="true", LDAP_SERVER_URI="ldaps://ldap.example.test", LDAP_BIND_PASSWORD_FILE=str(secret))

    def start(**env):
        code = ("import console.settings as s; print(s.LDAP_BIND_PASSWORD, s.LDAP_ISSUER, "
                f"{BACKEND!r} in s.AUTHENTICATION_BACKENDS, 'ldap-sync' in s.CELERY_BEAT_SCHEDULE)")
        return subprocess.run([sys.executable, "-c", code],
                              cwd=Path(__file__).resolve().parents[2], env={**clean, **env}, capture_output=True,
                              text=True, timeout=60)

    half = start()
    assert half.returncode != 0 and "LDAP_USER_SEARCH_BASE" in half.stderr
    full = start(LDAP_USER_SEARCH_BASE="ou=people,dc=example,dc=test", LDAP_GROUP_SEARCH_BASE="ou=groups,dc=example,dc=test")
    assert full.returncode == 0, full.stderr
    assert full.stdout.split() == ["s3cret-from-a-secret", "ldaps://ldap.example.test", "True", "True"]


@pytest.mark.parametrize("mode", ["starttls", "ldaps"])
def test_sign_in_over_tls_checks_the_servers_certificate(client, directory, ml_team, settings, mode):
    if mode == "starttls":
        settings.LDAP_START_TLS = True
    else:
        settings.LDAP_SERVER_URI = directory.ldaps_uri  # links stay under LDAP_ISSUER
    settings.LDAP_CA_FILE = directory.other_ca_file

    # A server certificate the configured CA did not sign: no bind, no sign-in.
    assert _sign_in(client, "eli", password_of("eli")).status_code == 200
    assert "_auth_user_id" not in client.session

    settings.LDAP_CA_FILE = directory.ca_file
    assert _sign_in(client, "eli", password_of("eli")).status_code == 302
    assert ExternalIdentity.objects.get(source="ldap").issuer == directory.uri
    from console.access.ldap import ldap_sync

    assert ldap_sync().checked == 1


def test_directory_passwords_work_when_local_passwords_are_kept_for_admins_only(client, directory, ml_team, settings):
    settings.LOCAL_PASSWORD_SIGN_IN = "admins"

    assert _sign_in(client, "eli", password_of("eli")).status_code == 302
    assert client.get(reverse("home")).status_code == 200
