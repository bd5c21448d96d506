"""Choose an artifact store from a URI: a directory, ``file:///abs/dir`` or ``s3://bucket/prefix``."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelport.core.errors import InvalidInputError
from modelport.registry.artifacts.local import LocalArtifactStore
from modelport.registry.protocols import ArtifactStore

__all__ = ["open_artifact_store"]

_SCHEMES = "a directory path, file:///absolute/dir or s3://bucket/prefix"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def open_artifact_store(
    uri: str | None,
    home: Path,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
) -> ArtifactStore:
    """The artifact store named by ``uri``; ``home / "artifacts"`` when ``uri`` is None.

    ``endpoint_url`` and ``region`` apply to ``s3://`` URIs only (an S3-compatible server such as
    MinIO is reached through ``endpoint_url``).
    """
    if uri is None:
        return LocalArtifactStore(Path(home) / "artifacts")
    if not uri.strip():
        raise InvalidInputError(f"the artifact store URI is empty; use {_SCHEMES}")
    match = _SCHEME.match(uri)
    if match is None or len(match.group(1)) == 1:  # no scheme, or a Windows drive letter
        return LocalArtifactStore(Path(uri).expanduser())
    scheme = match.group(1).lower()
    if scheme == "s3":
        return _s3(uri, endpoint_url, region)
    if scheme == "file":
        return LocalArtifactStore(_file_path(uri))
    raise InvalidInputError(
        f"artifact store URI scheme {scheme!r} is not supported; use {_SCHEMES}"
    )


def _s3(uri: str, endpoint_url: str | None, region: str) -> ArtifactStore:
    parts = urlsplit(uri)
    if "@" in parts.netloc:
        raise InvalidInputError(
            "an s3:// artifact URI must not contain credentials; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or a profile) instead"
        )
    if parts.query or parts.fragment or not parts.netloc:
        raise InvalidInputError(
            "an S3 artifact URI looks like s3://bucket or s3://bucket/prefix (no query or fragment)"
        )
    # imported here: boto3 costs ~0.35 s at start-up and only s3:// stores need it
    from modelport.registry.artifacts.s3 import S3ArtifactStore

    return S3ArtifactStore(parts.netloc, parts.path, endpoint_url=endpoint_url, region=region)


def _file_path(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise InvalidInputError(
            f"file URI {uri[:80]!r} must look like file:///absolute/dir (a local directory)"
        )
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise InvalidInputError(f"file URI {uri[:80]!r} must name an absolute directory")
    return Path(path)
