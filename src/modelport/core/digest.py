"""Content addressing: sha256 digests of files and the manifest that covers a whole artifact."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from modelport.core.errors import IntegrityError
from modelport.core.paths import safe_relpath

__all__ = ["Manifest", "ManifestEntry", "is_sha256", "sha256_bytes"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and bool(_HEX64.fullmatch(value))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    path: str
    sha256: str
    size: int

    def __post_init__(self) -> None:
        safe_relpath(self.path)
        if not is_sha256(self.sha256):
            raise IntegrityError(f"manifest entry {self.path!r} has an invalid sha256")
        if self.size < 0:
            raise IntegrityError(f"manifest entry {self.path!r} has a negative size")


@dataclass(frozen=True, slots=True)
class Manifest:
    """The list of files of one artifact. Its ``digest`` is the version's identity."""

    entries: tuple[ManifestEntry, ...]

    @classmethod
    def of(cls, entries: Iterable[ManifestEntry]) -> Manifest:
        ordered = tuple(sorted(entries, key=lambda e: e.path))
        seen: set[str] = set()
        for entry in ordered:
            if entry.path in seen:
                raise IntegrityError(f"manifest lists {entry.path!r} twice")
            seen.add(entry.path)
        return cls(ordered)

    def canonical_json(self) -> str:
        return json.dumps(
            [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in self.entries],
            separators=(",", ":"),
            sort_keys=True,
        )

    @property
    def digest(self) -> str:
        return "sha256:" + sha256_bytes(self.canonical_json().encode())

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    def to_list(self) -> list[dict[str, object]]:
        return [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in self.entries]

    @classmethod
    def from_list(cls, items: Iterable[Mapping[str, object]]) -> Manifest:
        entries = []
        for item in items:
            size = item["size"]
            if not isinstance(size, int):
                raise IntegrityError("manifest entry size must be an integer")
            entries.append(ManifestEntry(str(item["path"]), str(item["sha256"]), size))
        return cls.of(entries)
