"""SQL metadata store: SQLite (embedded default) and PostgreSQL (team mode)."""

from modelport.registry.sql.engine import make_engine
from modelport.registry.sql.migrate import upgrade
from modelport.registry.sql.store import SqlMetadataStore

__all__ = ["SqlMetadataStore", "make_engine", "upgrade"]
