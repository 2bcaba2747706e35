"""S3-compatible object stores as artifact stores: `s3://bucket/prefix` through Optuna's Boto3ArtifactStore.

The endpoint, region and credentials come from boto3's own chain (AWS_ENDPOINT_URL_S3 or
AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/config and
credentials), never from the URL: the URL is recorded on the study and shown in reports and logs, so
it may carry no secret, and every machine resolves it with its own credentials.

The bucket is checked when the store is opened, before any training: it must exist and answer these
credentials, and a writer must be able to write under the prefix. Each failure is one line naming the
URL and the endpoint (any password in it masked), never a key.
"""

from __future__ import annotations

import os
import re
import uuid

from harness.errors import UserError
from harness.runtime.secrets import masked_userinfo

SCHEME = "s3://"
# S3's bucket naming rules (3-63 characters, lowercase letters, digits, dots and hyphens); the
# underscore some S3-compatible servers accept is allowed too.
BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


def is_s3(url: str) -> bool:
    return url.startswith(SCHEME)


def split(url: str) -> tuple[str, str]:
    """(bucket, key prefix ending in '/' or empty) of an s3:// URL."""
    bucket, _, prefix = url.removeprefix(SCHEME).partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def url_problem(url: str) -> str | None:
    """Why `url` cannot name an S3 artifact store, or None."""
    netloc = url.removeprefix(SCHEME).partition("/")[0]
    if "@" in netloc or ":" in netloc:
        return ("credentials and endpoints do not go in the URL (it is recorded on the study); "
                "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and AWS_ENDPOINT_URL for a server other than AWS")
    if not netloc:
        return "expected s3://bucket or s3://bucket/prefix"
    if not BUCKET.match(netloc):
        return f"{netloc!r} is not a bucket name (3-63 lowercase letters, digits, dots and hyphens)"
    return None


def endpoint_shown() -> str:
    """Where boto3 will send requests, for messages: the configured endpoint with any user and password masked."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return masked(masked_userinfo(endpoint)) if endpoint else "AWS S3"


def masked(text: str) -> str:
    """`text` with the secret key and session token of the environment replaced by ***, wherever they appear."""
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if len(secret := os.environ.get(name, "")) >= 4:
            text = text.replace(secret, "***")
    return text


def client():
    """A boto3 S3 client from the standard AWS configuration; it gives up on an unreachable endpoint in seconds."""
    import boto3
    from botocore.config import Config

    # botocore's defaults wait 60 s per connection attempt: a mistyped endpoint would hang a sweep's start.
    config = Config(connect_timeout=5, read_timeout=120, retries={"max_attempts": 4, "mode": "standard"})
    return boto3.session.Session().client("s3", config=config)


class PrefixedStore:
    """Optuna's Boto3ArtifactStore with every key under `prefix`: one bucket holds many studies' artifacts."""

    def __init__(self, bucket: str, prefix: str, s3_client):
        from optuna.artifacts import Boto3ArtifactStore

        self.bucket, self.prefix = bucket, prefix
        self._store = Boto3ArtifactStore(bucket, client=s3_client)

    def open_reader(self, artifact_id: str):
        return self._store.open_reader(self.prefix + artifact_id)

    def write(self, artifact_id: str, content_body) -> None:
        self._store.write(self.prefix + artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self._store.remove(self.prefix + artifact_id)


def open_store(url: str, label: str, writable: bool) -> PrefixedStore:
    """The store at `url`, checked: the bucket answers, and (`writable`) a probe object can be written under the prefix."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

    bucket, prefix = split(url)
    where = f"{label} {url} (endpoint {endpoint_shown()})"
    try:
        s3 = client()
        s3.head_bucket(Bucket=bucket)
        if writable:
            probe = f"{prefix}.harness-write-check-{uuid.uuid4().hex}"
            s3.put_object(Bucket=bucket, Key=probe, Body=b"")
            s3.delete_object(Bucket=bucket, Key=probe)
    except (NoCredentialsError, PartialCredentialsError):
        raise UserError(f"{where}: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)") from None
    except ClientError as err:
        raise UserError(f"{where}: {masked(_client_error(err, bucket, writable))}") from None
    except BotoCoreError as err:  # unreachable endpoint, bad endpoint URL, timeouts, a bad region
        raise UserError(f"{where}: cannot reach the object store ({type(err).__name__})") from None
    return PrefixedStore(bucket, prefix, s3)


def _client_error(err, bucket: str, writable: bool) -> str:
    """One sentence for an error the server answered with (HEAD answers carry a status code, no message)."""
    code = str(err.response.get("Error", {}).get("Code", ""))
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    operation = getattr(err, "operation_name", "")
    if code in ("404", "NoSuchBucket") or status == 404:
        return f"no bucket {bucket!r} there (harness does not create buckets)"
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken") or (status == 403 and operation == "HeadBucket"):
        return (f"the server refused these credentials for bucket {bucket!r} ({code or status}): "
                "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
    if status == 403 and writable:
        return f"these credentials may read bucket {bucket!r} but not write to it ({code or status})"
    return f"the object store answered {code or status}"
