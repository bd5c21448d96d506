"""modelport: deliver, operate and version trained ML models in production."""

from __future__ import annotations

from modelport.api.registry import Registry
from modelport.core.errors import ModelportError
from modelport.core.refs import ModelRef

__all__ = ["ModelRef", "ModelportError", "Registry", "__version__"]

__version__ = "0.1.0"
