"""Model references: ``name`` (latest), ``name:3`` (a version), ``name@alias``."""

from __future__ import annotations

from dataclasses import dataclass

from modelport.core.errors import InvalidRefError
from modelport.core.names import validate_alias, validate_name

__all__ = ["ModelRef"]

_MAX_VERSION = 2**31 - 1


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed reference to a model version. At most one of ``version`` and ``alias`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        validate_name(self.name)
        if self.version is not None and self.alias is not None:
            raise InvalidRefError("a ref names either a version or an alias, not both")
        if self.version is not None and not 1 <= self.version <= _MAX_VERSION:
            raise InvalidRefError(f"version {self.version} of {self.name!r} is out of range")
        if self.alias is not None:
            validate_alias(self.alias)

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse ``name``, ``name:N`` or ``name@alias``; raise ``InvalidRefError`` otherwise."""
        if not isinstance(text, str) or not text or len(text) > 200:
            raise InvalidRefError("a model ref looks like NAME, NAME:VERSION or NAME@ALIAS")
        if "@" in text:
            name, _, alias = text.partition("@")
            return cls(name=name, alias=alias)
        if ":" in text:
            name, _, number = text.partition(":")
            if not number.isascii() or not number.isdigit():
                raise InvalidRefError(
                    f"version in ref {text[:60]!r} must be a positive integer, e.g. {name[:40]}:3"
                )
            return cls(name=name, version=int(number))
        return cls(name=text)

    @property
    def is_latest(self) -> bool:
        return self.version is None and self.alias is None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
