"""Every switch of the active version is recorded, with the state of the job that keeps every
user's list for it: the dashboard shows who activated what when, and a kept-lists job that failed
in the background.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    op.create_table(
        "activations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("previous_version_id", sa.Integer(), nullable=True),
        sa.Column("activated_by", sa.String(64), nullable=False),
        sa.Column("activated_at", sa.DateTime(), nullable=False),
        sa.Column("kept_status", sa.String(16), nullable=False),
        sa.Column("kept_done", sa.Integer(), nullable=False),
        sa.Column("kept_total", sa.Integer(), nullable=False),
        sa.Column("kept_updated_at", sa.DateTime(), nullable=True),
        sa.Column("kept_finished_at", sa.DateTime(), nullable=True),
        sa.Column("kept_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kept_status IN ('running', 'succeeded', 'failed', 'superseded')",
            name=op.f("ck_activations_kept_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activations")),
        **TABLE_OPTIONS,
    )
    op.create_index(op.f("ix_activations_version_id"), "activations", ["version_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_activations_version_id"), table_name="activations")
    op.drop_table("activations")
