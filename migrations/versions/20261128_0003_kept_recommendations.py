"""Kept recommendation lists: each user's top movies computed ahead of requests.

Written by `movierec recommendations keep` and after every activation; read with the user's row
in the one query a `recommendations` request makes when nothing changed (api/recommend/kept.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
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
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )  # fmt: skip
    op.create_index(
        op.f("ix_kept_recommendations_model_version_id"), "kept_recommendations", ["model_version_id"]
    )


def downgrade() -> None:
    op.drop_table("kept_recommendations")  # its index goes with it (MySQL refuses to drop an FK's index first)
