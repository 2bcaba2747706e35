"""S3-compatible artifact stores against a real S3 API (moto's server on 127.0.0.1, checking
credentials): keys under the prefix, fetch by id, a missing artifact, a reader that may not write, and
URLs and endpoints shown without their secrets. (Two machines sweeping into a bucket:
tests/integration/test_across_machines.py.)"""

import boto3
import optuna
import pytest

from harness.errors import UserError
from harness.runtime.secrets import masked_userinfo
from harness.store import object_store
from harness.store.artifacts import ArtifactMissing, ArtifactStore, url_problem


def aws_env(monkeypatch, env: dict) -> None:
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_files_and_folders_go_under_the_prefix_and_come_back_by_id(s3_server, monkeypatch, harness_home, tmp_path):
    aws, bucket, _ = s3_server
    aws_env(monkeypatch, aws)
    store = ArtifactStore(f"s3://{bucket}/team/study-1/", create=True)
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB, beyond one read
    trial = optuna.create_study().ask()  # what the ids are recorded on
    folder_id = store.upload_folder(folder, trial)
    (tmp_path / "items.parquet").write_bytes(b"PAR1 not really")
    file_id = store.upload_file(tmp_path / "items.parquet", trial)

    s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"])
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted([f"team/study-1/{folder_id}", f"team/study-1/{file_id}"]), "under the prefix, nothing else (the write probe is gone)"

    reader = ArtifactStore(f"s3://{bucket}/team/study-1")  # the same store, named without the trailing slash
    back = reader.fetch_folder(folder_id)
    assert (back / "weights.bin").read_bytes() == (folder / "weights.bin").read_bytes()
    assert reader.fetch_file(file_id, "items.parquet").read_bytes() == b"PAR1 not really"
    with pytest.raises(ArtifactMissing):
        reader.fetch_file("0f0f0f0f-0000-0000-0000-000000000000", "x")
    unread = store.upload_file(tmp_path / "items.parquet", trial)
    with pytest.raises(ArtifactMissing):  # another prefix is another store
        ArtifactStore(f"s3://{bucket}/team/study-2").fetch_file(unread, "items.parquet")


def test_a_reader_opens_the_bucket_but_a_writer_needs_write_access(s3_server, monkeypatch, harness_home):
    _, bucket, reader = s3_server
    aws_env(monkeypatch, reader)
    ArtifactStore(f"s3://{bucket}/p")  # reading: allowed
    with pytest.raises(UserError) as err:
        ArtifactStore(f"s3://{bucket}/p", create=True)
    assert "may read bucket 'harness-test' but not write to it" in str(err.value)
    assert reader["AWS_SECRET_ACCESS_KEY"] not in str(err.value)


@pytest.mark.parametrize("url, problem", [
    ("s3://", "expected s3://bucket"),
    ("s3://My_Bucket/p", "not a bucket name"),
    ("s3://ab/p", "not a bucket name"),
    ("s3://AKIAIOSFODNN7:wJalr/K7MDENG/bPxRfiCY@bucket/p", "credentials and endpoints do not go in the URL"),
    ("s3://minio.local:9000/bucket", "credentials and endpoints do not go in the URL"),
    ("gs://bucket/p", "not supported"),
])
def test_urls_that_name_no_bucket_are_refused_before_any_request(url, problem):
    assert problem in url_problem(url)
    with pytest.raises(UserError) as err:
        ArtifactStore(url)
    assert "wJalr" not in str(err.value) and "K7MDENG" not in str(err.value)


def test_secrets_are_masked_in_urls_endpoints_and_messages(monkeypatch):
    assert masked_userinfo("s3://AKIA:top/se@cret@bucket/p and postgresql://u:pw@db/x") == "s3://***@bucket/p and postgresql://***@db/x"
    assert masked_userinfo("s3://bucket/team@2026/p") == "s3://bucket/team@2026/p", "an @ in a plain URL's path is no secret"
    assert masked_userinfo("got 's3://AKIA:wJalr/K7MDENG@bucket/p'") == "got 's3://***@bucket/p'"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://minio:s3cr3t/x@minio.internal:9000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-key")
    assert object_store.endpoint_shown() == "https://***@minio.internal:9000"
    assert object_store.masked("denied for s3cr3t-key") == "denied for ***"
    assert object_store.split("s3://b/x/y/") == ("b", "x/y/") and object_store.split("s3://b") == ("b", "")
