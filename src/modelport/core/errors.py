"""The one error tree of modelport.

Every failure a user can see is a ``ModelportError`` with a stable ``code``. Messages name the
object and say what to do next. No HTTP status or exit code lives here: ``serving`` maps codes
to HTTP, ``cli`` maps them to exit codes.

    ModelportError
    ├── InvalidInputError                 bad value given by the caller
    │   ├── InvalidNameError              a model/alias/dataset name that is not allowed
    │   ├── InvalidRefError               a ref that does not parse (name, name:3, name@alias)
    │   ├── UnsafePathError               a path that would escape its root
    │   ├── SignatureError                data that does not match a signature
    │   ├── SpecError                     a deployment spec that does not validate (one line each)
    │   ├── RequestTooLargeError          a request body or shape over the configured limit
    │   └── UnsupportedMediaTypeError     a content type the protocol does not take (pickle...)
    ├── NotFoundError
    │   ├── ModelNotFoundError
    │   ├── VersionNotFoundError
    │   ├── AliasNotFoundError
    │   ├── DatasetNotFoundError
    │   ├── ArtifactNotFoundError
    │   ├── DeploymentNotFoundError       an endpoint without a recorded spec (or that revision)
    │   ├── RolloutNotFoundError          no such rollout, no rollout in progress, no command
    │   └── ApiKeyNotFoundError           no API key with that id or name
    ├── ConflictError                     the object exists already / changed concurrently
    ├── IntegrityError
    │   └── DigestMismatchError           an artifact does not match its recorded digest
    ├── TrustError
    │   ├── UntrustedPickleError          pickle/joblib without explicit trust
    │   └── UntrustedTypesError           skops types nobody accepted
    ├── FormatError
    │   ├── UnsupportedFormatError        no runtime for this format / object
    │   └── ModelLoadError                a runtime could not load the artifact
    ├── PredictionError                   the model failed while predicting
    ├── UnavailableError                  cannot answer now; retrying later may work
    │   ├── ModelNotReadyError            the version is loading, failed or unloading
    │   ├── OverloadedError               queues are full (carries retry_after seconds)
    │   └── ShuttingDownError             the server is draining
    ├── DeadlineExceededError             the request's deadline passed before an answer
    ├── EnvironmentMismatchError          lock and interpreter differ under a strict policy
    ├── MissingExtraError                 an optional dependency is not installed
    └── StoreError
        └── StoreUnavailableError         database or object store cannot be reached
"""

from __future__ import annotations

__all__ = [
    "AliasNotFoundError",
    "ApiKeyNotFoundError",
    "ArtifactNotFoundError",
    "ConflictError",
    "DatasetNotFoundError",
    "DeadlineExceededError",
    "DeploymentNotFoundError",
    "DigestMismatchError",
    "EnvironmentMismatchError",
    "EnvironmentMismatchWarning",
    "FormatError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidNameError",
    "InvalidRefError",
    "MissingExtraError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "ModelportError",
    "NotFoundError",
    "OverloadedError",
    "PredictionError",
    "RequestTooLargeError",
    "RolloutNotFoundError",
    "ShuttingDownError",
    "SignatureError",
    "SpecError",
    "StoreError",
    "StoreUnavailableError",
    "TrustError",
    "UnavailableError",
    "UnsafePathError",
    "UnsupportedFormatError",
    "UnsupportedMediaTypeError",
    "UntrustedPickleError",
    "UntrustedTypesError",
    "VersionNotFoundError",
]


class ModelportError(Exception):
    """Root of every modelport error. ``code`` is stable and safe to show to clients."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInputError(ModelportError):
    code = "invalid_input"


class InvalidNameError(InvalidInputError):
    code = "invalid_name"


class InvalidRefError(InvalidInputError):
    code = "invalid_ref"


class UnsafePathError(InvalidInputError):
    code = "unsafe_path"


class SignatureError(InvalidInputError):
    code = "signature_mismatch"


class SpecError(InvalidInputError):
    """A deployment spec with problems; ``problems`` holds one ``path: message`` line each."""

    code = "invalid_spec"

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))
        self.source = source
        self.problems = tuple(problems)


class RequestTooLargeError(InvalidInputError):
    code = "request_too_large"


class UnsupportedMediaTypeError(InvalidInputError):
    code = "unsupported_media_type"


class NotFoundError(ModelportError):
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class VersionNotFoundError(NotFoundError):
    code = "version_not_found"


class AliasNotFoundError(NotFoundError):
    code = "alias_not_found"


class DatasetNotFoundError(NotFoundError):
    code = "dataset_not_found"


class ArtifactNotFoundError(NotFoundError):
    code = "artifact_not_found"


class DeploymentNotFoundError(NotFoundError):
    code = "deployment_not_found"


class RolloutNotFoundError(NotFoundError):
    code = "rollout_not_found"


class ApiKeyNotFoundError(NotFoundError):
    code = "api_key_not_found"


class ConflictError(ModelportError):
    code = "conflict"


class IntegrityError(ModelportError):
    code = "integrity"


class DigestMismatchError(IntegrityError):
    code = "digest_mismatch"


class TrustError(ModelportError):
    code = "untrusted"


class UntrustedPickleError(TrustError):
    code = "untrusted_pickle"


class UntrustedTypesError(TrustError):
    code = "untrusted_types"

    def __init__(self, message: str, types: list[str] | None = None) -> None:
        super().__init__(message)
        self.types = sorted(types or [])


class FormatError(ModelportError):
    code = "format"


class UnsupportedFormatError(FormatError):
    code = "unsupported_format"


class ModelLoadError(FormatError):
    code = "model_load_failed"


class PredictionError(ModelportError):
    code = "prediction_failed"


class UnavailableError(ModelportError):
    code = "unavailable"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelNotReadyError(UnavailableError):
    code = "model_not_ready"


class OverloadedError(UnavailableError):
    code = "overloaded"


class ShuttingDownError(UnavailableError):
    code = "shutting_down"


class DeadlineExceededError(ModelportError):
    code = "deadline_exceeded"


class EnvironmentMismatchError(ModelportError):
    code = "environment_mismatch"


class EnvironmentMismatchWarning(UserWarning):
    """Loading a model whose environment lock differs from the interpreter (policy ``warn``)."""


class MissingExtraError(ModelportError):
    code = "missing_extra"

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with: pip install 'modelport[{extra}]'"
        )
        self.package = package
        self.extra = extra


class StoreError(ModelportError):
    code = "store"


class StoreUnavailableError(StoreError):
    code = "store_unavailable"
