"""Domain errors → exit codes, in one place."""

from __future__ import annotations

from modelport.core.errors import (
    EnvironmentMismatchError,
    IntegrityError,
    InvalidInputError,
    MissingExtraError,
    ModelportError,
    NotFoundError,
    StoreUnavailableError,
    TrustError,
    UnsupportedFormatError,
)

__all__ = ["EXIT_CODES", "exit_code"]

EXIT_CODES: tuple[tuple[type[ModelportError], int], ...] = (
    (InvalidInputError, 2),
    (NotFoundError, 3),
    (IntegrityError, 4),
    (TrustError, 5),
    (StoreUnavailableError, 6),
    (EnvironmentMismatchError, 7),
    (UnsupportedFormatError, 8),
    (MissingExtraError, 9),
)


def exit_code(error: ModelportError) -> int:
    """The documented exit code for a modelport error (1 for anything unlisted)."""
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return 1
