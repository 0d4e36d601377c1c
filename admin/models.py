"""ORM rows of the dashboard's sign-in state, in the database so that every worker and replica
shares them: open sessions, and failed sign-ins being counted."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from api.db import MYSQL_TABLE_ARGS, Base


class AdminSession(Base):
    """A signed-in browser; deleting the row signs it out, wherever its cookie went."""

    __tablename__ = "admin_sessions"
    __table_args__ = MYSQL_TABLE_ARGS

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # of the id in the cookie
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class SignInFailures(Base):
    """Failed sign-ins of one address or one browser (its device cookie) in the current window."""

    __tablename__ = "sign_in_failures"
    __table_args__ = MYSQL_TABLE_ARGS

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started: Mapped[datetime] = mapped_column(DateTime)
