"""The ObjectStore interface on a boto3 S3 client (SeaweedFS, MinIO or AWS)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, InvalidConfigError, SSLError
from botocore.exceptions import ConnectionError as S3ConnectionError

_MISSING = {"NoSuchKey", "404", "NotFound"}
_EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


class S3AccessError(RuntimeError):
    """S3 refused or could not be reached; the message says which setting to look at."""


def make_s3_client(
    *, endpoint_url: str | None, region: str | None, access_key_id: str | None, secret_access_key: str | None
) -> Any:
    """The one way this package makes an S3 client: the standard retry mode, bounded timeouts; unset
    credentials and region come from boto3's default chain (instance profile, IRSA, AWS_PROFILE)."""
    try:
        return boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30),
        )
    except InvalidConfigError as error:  # botocore's only one at creation: a CA bundle it cannot read
        raise S3AccessError(f"{error}; check AWS_CA_BUNDLE (a PEM file of the CA that signed the S3 endpoint)") from None


def explain_s3_error(error: Exception, bucket: str) -> S3AccessError:
    if isinstance(error, SSLError):
        url = urlsplit(str(error.kwargs.get("endpoint_url")))
        endpoint = f"{url.scheme}://{url.netloc}"
        if "No such file" in str(error):
            return S3AccessError(
                f"cannot read the CA file for S3 at {endpoint} (no such file); check AWS_CA_BUNDLE (a PEM file of the CA "
                "that signed the S3 endpoint)"
            )
        reason = "certificate verify failed" if "CERTIFICATE_VERIFY_FAILED" in str(error) else str(error)
        return S3AccessError(
            f"cannot verify the TLS certificate of S3 at {endpoint} ({reason}); set AWS_CA_BUNDLE to the CA file that "
            "signed it, or check AWS_ENDPOINT_URL"
        )
    if isinstance(error, EndpointConnectionError):
        return S3AccessError(f"cannot reach S3 at {error.kwargs.get('endpoint_url')}; check AWS_ENDPOINT_URL")
    code = error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__
    if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"}:
        return S3AccessError(
            f"S3 refused the credentials for bucket {bucket!r} ({code}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if code in {"NoSuchBucket", "404"}:
        return S3AccessError(f"S3 bucket {bucket!r} does not exist; create it or fix OUTPUT_PATH / WRITE_AHEAD_COMMIT_LOG_PATH")
    return S3AccessError(f"S3 error on bucket {bucket!r}: {error}")


class S3ObjectStore:
    def __init__(self, client: Any) -> None:
        self.client = client

    def check_bucket(self, bucket: str) -> None:
        try:
            self.client.head_bucket(Bucket=bucket)
        except (ClientError, S3ConnectionError) as error:
            raise explain_s3_error(error, bucket) from None

    def get(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in _MISSING:
                return None
            raise

    def get_tail(self, bucket: str, key: str, length: int) -> bytes | None:
        try:
            return self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{length}")["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in _MISSING:
                return None
            raise

    def size(self, bucket: str, key: str) -> int | None:
        try:
            return self.client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        except ClientError as error:
            if error.response["Error"]["Code"] in _MISSING:
                return None
            raise

    def put(self, bucket: str, key: str, body: bytes | bytearray) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=body)

    def put_if_absent(self, bucket: str, key: str, body: bytes) -> bool:
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
        except ClientError as error:
            if error.response["Error"]["Code"] in _EXISTS:
                return False
            raise
        return True

    def list_keys(self, bucket: str, prefix: str) -> dict[str, int]:
        found: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found.update({item["Key"]: item["Size"] for item in page.get("Contents", [])})
        return found

    def list_prefixes(self, bucket: str, prefix: str) -> list[str]:
        found: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            found.extend(item["Prefix"] for item in page.get("CommonPrefixes", []))
        return found
