from __future__ import annotations

import pytest

from modelport.core.digest import Manifest, ManifestEntry, sha256_bytes
from modelport.core.errors import IntegrityError, UnsafePathError
from modelport.core.paths import safe_relpath


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "C:/x",
        "a\\..\\x",
        "%2e%2e/x",
        "%252e%252e/x",
        "a\x00b",
        "a//b",
        "./a",
        "a/./b",
        "caf\u00e9",
        "a;b",
        "/".join(["d"] * 40),
        "x" * 2000,
        "",
    ],
)
def test_safe_relpath_rejects(path: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_relpath(path)


@pytest.mark.parametrize("path", ["model.skops", "code/my_model.py", "data/part-0001.parquet"])
def test_safe_relpath_accepts(path: str) -> None:
    assert safe_relpath(path) == path


def _entry(path: str, data: bytes) -> ManifestEntry:
    return ManifestEntry(path, sha256_bytes(data), len(data))


def test_manifest_digest_is_order_independent_and_content_sensitive() -> None:
    a = Manifest.of([_entry("a.bin", b"1"), _entry("b.bin", b"2")])
    b = Manifest.of([_entry("b.bin", b"2"), _entry("a.bin", b"1")])
    c = Manifest.of([_entry("a.bin", b"1"), _entry("b.bin", b"3")])
    assert a.digest == b.digest
    assert a.digest != c.digest
    assert a.digest.startswith("sha256:")
    assert Manifest.from_list(a.to_list()) == a
    assert a.total_size == 2


def test_manifest_rejects_duplicates_and_bad_hashes() -> None:
    with pytest.raises(IntegrityError):
        Manifest.of([_entry("a", b"1"), _entry("a", b"2")])
    with pytest.raises(IntegrityError):
        ManifestEntry("a", "zz", 1)
    with pytest.raises(UnsafePathError):
        ManifestEntry("../a", sha256_bytes(b""), 0)
