"""Ratings hold half stars: 0.5 to 5 in steps of 0.5, as the MovieLens CSV releases (ml-latest,
ml-25m, ml-32m) have them. Whole-star ratings keep their values.

A downgrade refuses while a half-star rating exists: rounding it would change what a user said.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HALF_STARS = "rating >= 0.5 AND rating <= 5 AND ROUND(rating * 2) = rating * 2"
WHOLE_STARS = "rating BETWEEN 1 AND 5"


def _swap(old_check: str, new_check: str, old_type: sa.types.TypeEngine, new_type: sa.types.TypeEngine,
          new_sql: str) -> None:  # fmt: skip
    # SQLite rebuilds the table (batch mode), MySQL/MariaDB alter it in place.
    with op.batch_alter_table("ratings") as batch:
        batch.drop_constraint(op.f(old_check), type_="check")
        batch.alter_column("rating", existing_type=old_type, type_=new_type, existing_nullable=False)
        batch.create_check_constraint(op.f(new_check), sa.text(new_sql))


def upgrade() -> None:
    _swap("ck_ratings_rating_range", "ck_ratings_rating_half_stars", sa.SmallInteger(), sa.Float(), HALF_STARS)


def downgrade() -> None:
    halves = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM ratings WHERE ROUND(rating) <> rating")).scalar()
    if halves:
        raise RuntimeError(
            f"{halves} ratings have half stars, which whole-star ratings cannot hold: delete them first"
        )
    _swap("ck_ratings_rating_half_stars", "ck_ratings_rating_range", sa.Float(), sa.SmallInteger(), WHOLE_STARS)
