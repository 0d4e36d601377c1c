"""A/B experiments between model versions, the lists users were shown (impressions) and what they did
with them (feedback).

`experiments.is_running` is TRUE or NULL under a unique constraint, as `model_versions.is_active`:
the database itself admits one running experiment at most. An impression's id is random (63 bits),
made by the serving process before the row is written, so that the answer carries it while the row
waits in the process's queue; `movie_ids` is the list as shown, comma-separated. Feedback goes with its
impression (ON DELETE CASCADE) when old impressions are pruned.

A downgrade refuses while any of the three tables holds a row, as 0008 to 0010 refuse to lose data:
clear them first (`DELETE FROM feedback; DELETE FROM impressions; DELETE FROM experiments`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
TABLES = ("feedback", "impressions", "experiments")


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("control_version_id", sa.Integer(), nullable=False),
        sa.Column("treatment_version_id", sa.Integer(), nullable=False),
        sa.Column("treatment_share", sa.Float(), nullable=False),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.Column("started_by", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=True),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(255), nullable=True),
        sa.Column("is_running", sa.Boolean(), nullable=True),
        sa.CheckConstraint("treatment_share > 0 AND treatment_share < 1", name=op.f("ck_experiments_share")),
        sa.CheckConstraint(
            "is_running IS NULL OR is_running = 1", name=op.f("ck_experiments_running_true_or_null")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("is_running", name=op.f("uq_experiments_is_running")),
        **MYSQL,
    )
    op.create_table(
        "impressions",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=True),
        sa.Column("arm", sa.String(9), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("movie_ids", sa.Text(), nullable=False),
        sa.Column("shown_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_impressions")),
        **MYSQL,
    )
    op.create_index(op.f("ix_impressions_user_id"), "impressions", ["user_id"])
    op.create_index(op.f("ix_impressions_experiment_id"), "impressions", ["experiment_id"])
    op.create_index(op.f("ix_impressions_shown_at"), "impressions", ["shown_at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("impression_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("movie_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('click', 'watch', 'dismiss')", name=op.f("ck_feedback_kind")),
        sa.ForeignKeyConstraint(
            ["impression_id"], ["impressions.id"], name=op.f("fk_feedback_impression_id_impressions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        **MYSQL,
    )
    op.create_index(op.f("ix_feedback_impression_id"), "feedback", ["impression_id"])


def downgrade() -> None:
    bind = op.get_bind()
    held = {t: bind.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in TABLES}
    if any(held.values()):
        counts = ", ".join(f"{n} {t}" for t, n in held.items() if n)
        raise RuntimeError(f"this schema cannot hold the {counts} rows; delete them first")
    for table in TABLES:
        op.drop_table(table)
