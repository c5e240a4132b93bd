"""Secrets at rest: ciphertext in the column, rotation without downtime, and a wrong key stops
start-up with a message naming the variable — never garbage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from console import crypto
from console.env import parse_keys
from console.models import EncryptionCheck
from endpoints.models import StorageConnection
from endpoints.services.connections import connection_create, secret_values

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]
SECRET = "SECRET-at-rest-0d9f8e7c6b5a"


def _s3(alice, project, name="bucket"):
    return connection_create(actor=alice, project=project, name=name, kind="s3",
                             config={"endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"},
                             secrets={"access_key_id": "AKIAEXAMPLE0001", "secret_access_key": SECRET})


@pytest.fixture
def project(alice):
    from tests.endpoints.endpoint_factories import ProjectFactory

    return ProjectFactory(name="vault")


def test_the_column_holds_ciphertext_and_only_the_services_read_it_back(alice, project):
    connection = _s3(alice, project)
    with connection_cursor() as cursor:
        cursor.execute("SELECT secret_ciphertext, config FROM endpoints_storageconnection WHERE id = %s",
                       [connection.pk])
        ciphertext, config = cursor.fetchone()
    assert SECRET not in ciphertext and "AKIAEXAMPLE0001" not in ciphertext
    assert SECRET not in str(config)
    assert ciphertext.startswith("gAAAA")  # a Fernet token
    assert secret_values(StorageConnection.objects.get(pk=connection.pk))["secret_access_key"] == SECRET


def connection_cursor():
    return connection.cursor()


def test_rotation_new_key_first_then_the_command_reencrypts_everything(alice, project, settings):
    old_key = settings.CONSOLE_ENCRYPTION_KEYS[0]
    crypto.verify_keys()
    connection = _s3(alice, project)
    before = StorageConnection.objects.get(pk=connection.pk).secret_ciphertext
    new_key = Fernet.generate_key().decode()
    settings.CONSOLE_ENCRYPTION_KEYS = [new_key, old_key]
    # No downtime: with the new key first, what the old key encrypted still reads.
    assert crypto.verify_keys() == "verified"
    assert secret_values(StorageConnection.objects.get(pk=connection.pk))["secret_access_key"] == SECRET
    call_command("rotate_encryption_keys", stdout=open(os.devnull, "w"))  # noqa: SIM115
    after = StorageConnection.objects.get(pk=connection.pk).secret_ciphertext
    assert after != before
    # The old key can go: everything now reads with the new key alone.
    settings.CONSOLE_ENCRYPTION_KEYS = [new_key]
    assert crypto.verify_keys() == "verified"
    assert secret_values(StorageConnection.objects.get(pk=connection.pk))["secret_access_key"] == SECRET
    assert Fernet(new_key.encode()).decrypt(after.encode())


def test_a_wrong_key_refuses_to_start_and_names_the_variable(alice, project, settings):
    crypto.verify_keys()
    _s3(alice, project)
    settings.CONSOLE_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ImproperlyConfigured, match="CONSOLE_ENCRYPTION_KEYS"):
        crypto.verify_keys()
    with pytest.raises(crypto.DecryptionError, match="CONSOLE_ENCRYPTION_KEYS"):
        secret_values(StorageConnection.objects.get(name="bucket"))
    from console.checks import encryption_keys_check

    errors = encryption_keys_check(databases=["default"])
    assert [e.id for e in errors] == ["console.E101"] and "CONSOLE_ENCRYPTION_KEYS" in errors[0].msg


def test_the_check_value_is_written_once():
    EncryptionCheck.objects.all().delete()  # migrate stored one; start as a fresh install would
    assert crypto.verify_keys() == "created"
    assert crypto.verify_keys() == "verified"
    assert EncryptionCheck.objects.count() == 1


@pytest.mark.parametrize("text", ["not-a-key", "c2hvcnQ=", "a" * 44])
def test_keys_that_are_not_fernet_keys_are_refused_at_settings_load(text):
    with pytest.raises(ImproperlyConfigured, match="CONSOLE_ENCRYPTION_KEYS: key 1 is not a Fernet key"):
        parse_keys(text)


def test_keys_parse_from_commas_and_lines():
    a, b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    assert parse_keys(f"{a},\n{b}\n") == [a, b]


@pytest.mark.django_db(transaction=True)
def test_migrate_with_a_wrong_key_stops_with_the_variable_name(tmp_path):
    """A fresh process (as `make run` and a deployment's migrate job start one) against a database
    whose secrets were encrypted with another key: Django's checks stop it, naming the variable."""
    database = tmp_path / "db.sqlite3"
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL",)}
    env.update({"DATABASE_URL": f"sqlite:///{database}", "DJANGO_SETTINGS_MODULE": "console.settings",
                "SECRET_KEY": "x" * 50, "AUDIT_SIGNING_KEY": "y" * 40, "DEBUG": "false",
                "CONSOLE_ENCRYPTION_KEYS": Fernet.generate_key().decode()})
    manage = [sys.executable, str(REPO / "manage.py")]
    first = subprocess.run([*manage, "migrate", "--noinput"], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    env["CONSOLE_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    second = subprocess.run([*manage, "migrate", "--noinput"], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode != 0
    assert "CONSOLE_ENCRYPTION_KEYS" in second.stderr and "console.E101" in second.stderr


def test_cluster_api_tokens_are_encrypted_at_rest_and_rotated_with_the_rest(settings):
    from endpoints.models import Cluster
    from endpoints.services.platform import cluster_create

    token = "SECRET-cluster-token-4c3b2a19"
    cluster = cluster_create(actor=None, name="prod", kind=Cluster.Kind.KUBERNETES, connection=Cluster.Connection.URL,
                             api_url="https://127.0.0.1:6443", api_token=token, verify=False)
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_token_ciphertext FROM endpoints_cluster WHERE id = %s", [cluster.pk])
        (stored,) = cursor.fetchone()
    assert token not in stored and stored.startswith("gAAAA")
    assert Cluster.objects.get(pk=cluster.pk).api_token == token
    old_key = settings.CONSOLE_ENCRYPTION_KEYS[0]
    settings.CONSOLE_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old_key]
    counts = crypto.rotate_all()
    assert counts["endpoints.Cluster.api_token_ciphertext"] == 1
    settings.CONSOLE_ENCRYPTION_KEYS = settings.CONSOLE_ENCRYPTION_KEYS[:1]
    assert Cluster.objects.get(pk=cluster.pk).api_token == token
