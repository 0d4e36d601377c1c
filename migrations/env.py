"""Alembic environment: the URL comes from movierec's settings, or from a connection handed in."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import JSON, Connection
from sqlalchemy.types import TypeEngine

import admin.models
import api.access.models
import api.movies.models
import api.ratings.models
import api.recommend.models
import api.users.models
import api.versions.models
from api.db import Base, make_engine
from api.settings import Settings

# Every table of the product, including the dashboard's: the modules above declare them on Base.
MODEL_MODULES = (admin.models, api.access.models, api.movies.models, api.ratings.models,
                 api.recommend.models, api.users.models, api.versions.models)  # fmt: skip
metadata = Base.metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def compare_type(
    _context: object, _inspected: object, _column: object, inspected: TypeEngine, ours: TypeEngine
) -> bool | None:
    """Alembic's type comparison: MariaDB reflects JSON as LONGTEXT, which is no difference."""
    return False if isinstance(ours, JSON) and type(inspected).__name__ in {"LONGTEXT", "JSON"} else None


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=compare_type,
        render_as_batch=connection.dialect.name == "sqlite",
    )


def _run(connection: Connection) -> None:
    """Run the migrations in one transaction. On SQLite, with foreign keys unchecked while they run:
    batch mode rebuilds a table by copy, drop and rename, and dropping a table that others reference
    would fail (Alembic's advice); the keys are checked whole before the transaction commits."""
    _configure(connection)
    raw = connection.connection.driver_connection if connection.dialect.name == "sqlite" else None
    if raw is not None:  # outside a transaction, where SQLite lets this pragma change
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        with context.begin_transaction():
            context.run_migrations()
            if raw is not None:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
    finally:
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=ON")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url
    engine = make_engine(url)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url
    context.configure(url=url, target_metadata=metadata, literal_binds=True, compare_type=compare_type)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
