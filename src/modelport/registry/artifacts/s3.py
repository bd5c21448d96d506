"""Artifact store on an S3-compatible object store (AWS S3, MinIO, Ceph, moto...).

Keys are ``<prefix>/blobs/sha256/<first 2 hex>/<64 hex>``. Uploads are hashed first (the bytes are
spooled to a temporary file while hashing, so the key always names exactly what is uploaded), then
sent with ``upload_fileobj`` (multipart above 8 MiB) unless an object of the same size is already
there. Fetches stream the object and verify its sha256 while writing.

Needs ``boto3`` (``pip install 'modelport[s3]'``); without it the constructor raises
``MissingExtraError``. Credentials come from the usual AWS sources (environment, profile, instance
role) and never appear in messages.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from modelport.core.errors import (
    ArtifactNotFoundError,
    InvalidInputError,
    MissingExtraError,
    ModelportError,
    StoreError,
    StoreUnavailableError,
)
from modelport.registry.artifacts._io import (
    CHUNK,
    check_key,
    copy_verified,
    hash_copy,
    put_regular_file,
)
from modelport.registry.artifacts.s3_names import check_endpoint, clean_prefix, validate_bucket

_BOTO3_IMPORT_ERROR: ImportError | None = None
try:
    from boto3.s3.transfer import TransferConfig
    from boto3.session import Session
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess test
    _BOTO3_IMPORT_ERROR = _exc

__all__ = ["S3ArtifactStore"]

SPOOL_MAX = 8 << 20
MULTIPART_THRESHOLD = 8 << 20
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED = frozenset(
    {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
    | {"ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
)
_BUSY = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"})


def _make_client(endpoint_url: str | None, region: str) -> Any:
    options: dict[str, Any] = {
        "region_name": region,
        "retries": {"mode": "standard", "max_attempts": 3},
        "connect_timeout": 5,
        "read_timeout": 60,
    }
    if endpoint_url is not None:
        options["s3"] = {"addressing_style": "path"}
    try:
        return Session().client("s3", endpoint_url=endpoint_url, config=Config(**options))
    except (ValueError, BotoCoreError) as exc:
        raise InvalidInputError(
            f"cannot configure the S3 client for region {region!r} and endpoint "
            f"{endpoint_url!r}: {exc}"
        ) from exc


class S3ArtifactStore:
    """Blobs in an S3 bucket under ``prefix``.

    ``client`` is a seam: pass a configured boto3 S3 client (for example with other retry or
    timeout settings) and the store uses it but does not close it; otherwise the store makes one
    (path-style addressing for a custom endpoint, 3 attempts, 5 s connect timeout). Either way it
    is available as ``store.client``. ``delete`` of an absent blob is a no-op.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        client: Any = None,
    ) -> None:
        if _BOTO3_IMPORT_ERROR is not None:
            raise MissingExtraError("boto3", "s3") from _BOTO3_IMPORT_ERROR
        self.bucket = validate_bucket(bucket)
        self.prefix = clean_prefix(prefix)
        self.endpoint_url = check_endpoint(endpoint_url)
        self.region = region
        self.uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self._owns_client = client is None
        self.client = client if client is not None else _make_client(self.endpoint_url, region)
        self._bucket_seen = False

    def __repr__(self) -> str:
        return f"S3ArtifactStore({self.uri!r}, endpoint_url={self.endpoint_url!r})"

    def put_file(self, path: Path) -> tuple[str, int]:
        return put_regular_file(self.put_stream, path)

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX) as spool:
            key, size = hash_copy(stream, spool)
            with self._translate(f"storing blob sha256:{key}", key):
                if self._stored_size(key) == size:
                    return key, size
                spool.seek(0)
                self.client.upload_fileobj(
                    spool,
                    self.bucket,
                    self._object_key(key),
                    Config=TransferConfig(
                        multipart_threshold=MULTIPART_THRESHOLD,
                        multipart_chunksize=MULTIPART_THRESHOLD,
                        max_concurrency=4,
                    ),
                )
                self._bucket_seen = True
        return key, size

    def exists(self, sha256: str) -> bool:
        key = check_key(sha256)
        with self._translate(f"looking up blob sha256:{key}", key):
            return self._stored_size(key) is not None

    def fetch(self, sha256: str, dest: Path) -> None:
        key = check_key(sha256)
        with self._translate(f"fetching blob sha256:{key}", key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
            body = response["Body"]
            with contextlib.closing(body):
                copy_verified(body.iter_chunks(CHUNK), dest, key, self.uri)

    def delete(self, sha256: str) -> None:
        key = check_key(sha256)
        with self._translate(f"deleting blob sha256:{key}", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))

    def list_blobs(self) -> list[str]:
        """Every stored blob key, sorted. Objects that do not fit the layout are ignored."""
        base = self._object_key("")
        pattern = re.compile(re.escape(base) + r"([0-9a-f]{2})/([0-9a-f]{64})")
        found: list[str] = []
        with self._translate("listing blobs"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base):
                for item in page.get("Contents", ()):
                    match = pattern.fullmatch(item["Key"])
                    if match and match.group(2).startswith(match.group(1)):
                        found.append(match.group(2))
        return sorted(found)

    def close(self) -> None:
        """Release the HTTP connection pool (only of a client this store created)."""
        if self._owns_client:
            self.client.close()

    # -- internals -------------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        tail = f"blobs/sha256/{key[:2]}/{key}" if key else "blobs/sha256/"
        return f"{self.prefix}/{tail}" if self.prefix else tail

    @property
    def _where(self) -> str:
        server = self.endpoint_url or f"AWS S3 in {self.region}"
        return f"bucket {self.bucket!r} at {server}"

    def _stored_size(self, key: str) -> int | None:
        """Size of the stored object, or None when absent (after checking the bucket exists)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND:
                raise
            self._check_bucket()
            return None
        self._bucket_seen = True
        return int(head["ContentLength"])

    def _check_bucket(self) -> None:
        """HEAD answers a bare 404 for a missing bucket too; tell the two cases apart once."""
        if self._bucket_seen:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND | {"NoSuchBucket"}:
                raise self._no_bucket() from exc
            raise
        self._bucket_seen = True

    def _no_bucket(self) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"{self._where} does not exist; create it (for example "
            f"`aws s3 mb s3://{self.bucket}`) or point the artifact URI at an existing bucket"
        )

    @contextlib.contextmanager
    def _translate(self, action: str, key: str | None = None) -> Iterator[None]:
        """Map botocore failures onto the modelport error tree."""
        try:
            yield
        except ClientError as exc:
            raise self._client_error(exc, action, key) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise StoreUnavailableError(
                f"cannot reach the S3 artifact store {self._where} while {action} "
                f"({exc.__class__.__name__}); check the endpoint URL and region, that the server "
                "is running and reachable from here, and any proxy settings"
            ) from exc
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise StoreError(
                f"no usable S3 credentials for {self._where}; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            ) from exc
        except BotoCoreError as exc:
            raise StoreError(f"{action} in {self._where} failed: {exc}") from exc
        except OSError as exc:  # the local side: spool file or destination (e.g. disk full)
            raise StoreError(
                f"{action} from {self._where} failed locally ({exc.strerror or exc}); check free "
                "space in the destination and temporary directories"
            ) from exc

    def _client_error(self, exc: Any, action: str, key: str | None) -> ModelportError:
        code = _code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code == "NoSuchBucket":
            return self._no_bucket()
        if code in _NOT_FOUND and key is not None:
            return ArtifactNotFoundError(
                f"blob sha256:{key} is not in the artifact store {self.uri}"
            )
        if code in _DENIED:
            return StoreError(
                f"access to {self._where} was denied ({code}) while {action}; check the "
                f"credentials and that they may read and write {self.uri}/"
            )
        if code in _BUSY or status >= 500:
            return StoreUnavailableError(
                f"the S3 artifact store {self._where} is unavailable ({code or status}) while "
                f"{action}; retry later or check the server"
            )
        return StoreError(f"{action} in {self._where} failed ({code or status}); {exc}")


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
