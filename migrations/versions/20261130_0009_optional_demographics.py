"""A user's demographics are optional: datasets without them (the MovieLens CSV releases, most teams'
own data) import and train; a NULL reads as "unknown" everywhere, never as a value.

The checks on gender and age buckets still hold for the values present. A downgrade refuses while a
user without demographics exists: inventing values for them would be wrong.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "gender": sa.String(length=1),
    "age": sa.SmallInteger(),
    "occupation_id": sa.SmallInteger(),
    "zip_code": sa.String(length=10),
}


def _nullable(nullable: bool) -> None:
    # SQLite rebuilds the table (migrations/env.py holds its foreign keys meanwhile).
    with op.batch_alter_table("users") as batch:
        for name, kind in COLUMNS.items():
            batch.alter_column(name, existing_type=kind, nullable=nullable)


def upgrade() -> None:
    _nullable(True)


def downgrade() -> None:
    unknown = " OR ".join(f"{name} IS NULL" for name in COLUMNS)
    count = op.get_bind().execute(sa.text(f"SELECT COUNT(*) FROM users WHERE {unknown}")).scalar()
    if count:
        raise RuntimeError(f"{count} users have unknown demographics, which this schema cannot hold")
    _nullable(False)
