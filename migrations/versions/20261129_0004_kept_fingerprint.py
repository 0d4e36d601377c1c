"""Kept recommendation lists carry one fingerprint of everything the answer depends on.

The row used to name each input in a column of its own (model version, ratings version, newest
movie, time bucket) and every reader compared them by hand; now one function computes a
fingerprint of them all (api/recommend/kept.py) and a row answers only when its fingerprint is
the one computed for the request. The lists are derived data, recomputed on the next request or
by `movierec versions keep`, so both directions start from an empty table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    op.drop_table("kept_recommendations")
    op.create_table(
        "kept_recommendations",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("newest_rating", sa.BigInteger(), nullable=True),
        sa.Column("items", sa.Text(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_kept_recommendations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_kept_recommendations")),
        **TABLE_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("kept_recommendations")
    op.create_table(
        "kept_recommendations",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("ratings_version", sa.BigInteger(), nullable=False),
        sa.Column("newest_movie", sa.Integer(), nullable=True),
        sa.Column("time_key", sa.Integer(), nullable=False),
        sa.Column("newest_rating", sa.BigInteger(), nullable=True),
        sa.Column("items", sa.Text(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_kept_recommendations_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"], ["model_versions.id"],
            name=op.f("fk_kept_recommendations_model_version_id_model_versions"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_kept_recommendations")),
        **TABLE_OPTIONS,
    )  # fmt: skip
    op.create_index(
        op.f("ix_kept_recommendations_model_version_id"), "kept_recommendations", ["model_version_id"]
    )
