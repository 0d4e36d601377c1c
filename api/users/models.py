"""ORM rows for users and the ML-1M occupations."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from api.db import MYSQL_TABLE_ARGS, Base, CreatedAtMixin

AGE_BUCKET_VALUES = (1, 18, 25, 35, 45, 50, 56)


class Occupation(Base):
    __tablename__ = "occupations"
    __table_args__ = MYSQL_TABLE_ARGS

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class User(CreatedAtMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("gender IN ('F', 'M')", name="gender"),
        CheckConstraint(f"age IN {AGE_BUCKET_VALUES}", name="age_bucket"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Demographics may be unknown (NULL): datasets without them train with an "unknown" input.
    gender: Mapped[str | None] = mapped_column(String(1))
    age: Mapped[int | None] = mapped_column(SmallInteger)
    occupation_id: Mapped[int | None] = mapped_column(
        SmallInteger, ForeignKey("occupations.id", ondelete="RESTRICT"), index=True
    )
    zip_code: Mapped[str | None] = mapped_column(String(10))
    # Bumped in the same transaction as every change to the user's ratings (rate, delete, import):
    # serving keeps the user's recommendations while it stays the same.
    ratings_version: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
