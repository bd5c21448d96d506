"""modelport: deliver, operate and version trained ML models in production."""

from __future__ import annotations

from modelport._version import __version__
from modelport.api.registry import Registry
from modelport.core.errors import ModelportError
from modelport.core.refs import ModelRef

__all__ = ["ModelRef", "ModelportError", "Registry", "__version__"]
