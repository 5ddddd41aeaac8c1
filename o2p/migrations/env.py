"""Alembic's environment for the registry: always run from o2p.migrations.upgrade with an open
connection (no alembic.ini, no URL in a file: the URL is the config's `registry_url`)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
