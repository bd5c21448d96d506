"""The rollout controller's ``Aliases`` port over the registry.

A promotion moves ``model@alias`` through the registry's own ``set_alias``, so the move gets
the same history row and ``alias.set`` audit event, in one transaction, as one made by hand.
``set_alias`` already treats a move to the version the alias points at as no move (no history
row, no audit event), which is exactly the idempotence the port asks for: a controller that
re-applies a promotion after a crash changes nothing.
"""

from __future__ import annotations

from modelport.core.names import validate_alias, validate_name
from modelport.registry.protocols import MetadataStore
from modelport.registry.service import RegistryService

__all__ = ["RegistryAliases"]


class RegistryAliases:
    """``rollout.ports.Aliases`` over a registry store (or a ``RegistryService``, whose store
    is used), every move recorded as ``actor``; thread-safe as the store is."""

    def __init__(
        self, registry: MetadataStore | RegistryService, *, actor: str = "controller"
    ) -> None:
        self._store = registry.meta if isinstance(registry, RegistryService) else registry
        self._actor = actor

    def move(self, model: str, alias: str, version: int, reason: str) -> None:
        """Point ``model@alias`` at ``version`` with its history row; nothing when it points
        there already. ``VersionNotFoundError`` when the version does not exist."""
        self._store.set_alias(
            validate_name(model), validate_alias(alias), version, self._actor, reason
        )
