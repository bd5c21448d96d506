"""The Python API of modelport."""

from __future__ import annotations

from modelport.api.registry import Registry, TypeApprover

__all__ = ["Registry", "TypeApprover"]
