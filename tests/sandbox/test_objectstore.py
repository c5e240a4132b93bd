"""The sandbox object store is a real S3 server: it checks signatures and keeps data across a key change."""

import botocore.exceptions
import pytest

from tests.fixtures.storage import new_identity, s3_client


def test_s3_server_checks_signatures(own_s3_server):
    c = s3_client(own_s3_server)
    c.create_bucket(Bucket="bucket-one")
    c.put_object(Bucket="bucket-one", Key="m/model.bin", Body=b"abc")
    bad = s3_client(own_s3_server, secret_key="wrong")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        bad.list_objects_v2(Bucket="bucket-one")
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    new = new_identity()
    own_s3_server.restart(identities=[new])
    c2 = s3_client(own_s3_server)
    assert c2.get_object(Bucket="bucket-one", Key="m/model.bin")["Body"].read() == b"abc"


def test_every_fresh_bucket_can_be_written(s3_server):
    """Each bucket is a SeaweedFS collection with volumes of its own: many buckets on one server
    (one per test) must all take writes (they ran out of volumes from the third one on)."""
    import secrets

    client = s3_client(s3_server)
    for _ in range(12):
        bucket = f"t-{secrets.token_hex(6)}"
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="m/model.bin", Body=b"abc")
        assert client.get_object(Bucket=bucket, Key="m/model.bin")["Body"].read() == b"abc"


def test_reload_identities_changes_the_keys_in_place(own_s3_server):
    old = s3_client(own_s3_server)
    old.create_bucket(Bucket="bucket-two")
    old.put_object(Bucket="bucket-two", Key="m/model.bin", Body=b"abc")
    pid = own_s3_server.pid
    own_s3_server.reload_identities([new_identity()])
    assert own_s3_server.pid == pid  # no restart
    with pytest.raises(botocore.exceptions.ClientError) as err:
        old.list_objects_v2(Bucket="bucket-two")
    assert err.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert s3_client(own_s3_server).get_object(Bucket="bucket-two", Key="m/model.bin")["Body"].read() == b"abc"
