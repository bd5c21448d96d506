"""open_artifact_store: the store is chosen by URI scheme."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.core.errors import InvalidInputError
from modelport.registry.artifacts import LocalArtifactStore, open_artifact_store
from modelport.registry.artifacts.s3 import S3ArtifactStore


def test_default_is_a_local_store_under_home(tmp_path: Path) -> None:
    store = open_artifact_store(None, tmp_path / "home")
    assert isinstance(store, LocalArtifactStore)
    assert store.root == tmp_path / "home" / "artifacts"


def test_plain_path_and_file_uri(tmp_path: Path) -> None:
    plain = open_artifact_store(str(tmp_path / "my blobs"), tmp_path)
    assert isinstance(plain, LocalArtifactStore)
    assert plain.root == tmp_path / "my blobs"
    again = open_artifact_store(plain.uri, tmp_path)  # file:///...%20... round-trips
    assert isinstance(again, LocalArtifactStore)
    assert again.root == plain.root
    assert isinstance(open_artifact_store("file://localhost/srv/a", tmp_path), LocalArtifactStore)


def test_s3_uri() -> None:
    store = open_artifact_store(
        "s3://models-bucket/team/a",
        Path("."),
        endpoint_url="http://127.0.0.1:9",
        region="eu-west-1",
    )
    assert isinstance(store, S3ArtifactStore)
    assert (store.bucket, store.prefix, store.region) == ("models-bucket", "team/a", "eu-west-1")
    assert store.uri == "s3://models-bucket/team/a"
    store.close()


BAD_URIS = [
    *["gs://bucket/x", "http://host/x", "", "   ", "file://remote/x", "file:relative/x", "s3://"],
    *["s3://bucket/x?versionId=1", "s3://Bad_Bucket/x"],
]


@pytest.mark.parametrize("uri", BAD_URIS)
def test_unsupported_or_malformed_uris(uri: str) -> None:
    with pytest.raises(InvalidInputError):
        open_artifact_store(uri, Path("."))


def test_unknown_scheme_names_the_supported_ones() -> None:
    with pytest.raises(InvalidInputError, match=r"'gs' is not supported; use .*s3://bucket/prefix"):
        open_artifact_store("gs://bucket/x", Path("."))


def test_credentials_in_an_s3_uri_are_refused_and_not_echoed() -> None:
    with pytest.raises(InvalidInputError, match="must not contain credentials") as info:
        open_artifact_store("s3://AKID:s3cr3t@bucket/x", Path("."))
    assert "s3cr3t" not in str(info.value)
