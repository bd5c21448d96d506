"""Alembic environment of the modelport metadata database.

Migrations run only through ``modelport.registry.sql.upgrade(engine)``, which passes an open
connection (inside its transaction) in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from modelport.core.errors import StoreError
from modelport.registry.sql.tables import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise StoreError("run modelport migrations with modelport.registry.sql.upgrade(engine)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
