"""Alembic environment: runs on the connection that storage.db.migrate passes in."""

from alembic import context

from storage.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic` on the command line: connect to the configured database
    from storage.db import get_engine

    connection = get_engine().connect()

context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=True)  # batch mode: SQLite cannot ALTER most things
with context.begin_transaction():
    context.run_migrations()
