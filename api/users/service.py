"""Queries and writes for users."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import BadUserInput, NotFound
from api.users.models import AGE_BUCKET_VALUES, Occupation, User


def get_user(*, session: Session, user_id: int) -> User:
    """Return the user, or raise NotFound."""
    if (user := session.get(User, user_id)) is None:
        raise NotFound(f"user {user_id} does not exist")
    return user


def occupation_names(*, session: Session, ids: Sequence[int]) -> dict[int, str]:
    """Return the occupations' names by id."""
    query = select(Occupation.id, Occupation.name).where(Occupation.id.in_(set(ids)))
    return dict(session.execute(query).all())


def list_occupations(*, session: Session) -> list[Occupation]:
    """Return every occupation by id: ML-1M's 21, then those imported datasets named."""
    return list(session.execute(select(Occupation).order_by(Occupation.id)).scalars())


def list_users(*, session: Session, first: int, after_id: int | None = None) -> list[User]:
    """Return up to first + 1 users by id after after_id."""
    query = select(User).order_by(User.id).limit(first + 1)
    if after_id is not None:
        query = query.where(User.id > after_id)
    return list(session.execute(query).scalars())


def check_gender_and_age(gender: str | None, age: int | None) -> None:
    """Raise BadUserInput unless gender and age bucket are each an ML-1M value or None (unknown)."""
    if gender is not None and gender not in ("F", "M"):
        raise BadUserInput("gender must be F or M, or left out")
    if age is not None and age not in AGE_BUCKET_VALUES:
        buckets = ", ".join(map(str, AGE_BUCKET_VALUES))
        raise BadUserInput(f"age must be one of the buckets {buckets}, or left out")


def check_occupation(*, session: Session, occupation: int) -> None:
    """Raise BadUserInput unless the occupation is one of the occupations table's, naming its ids."""
    if session.get(Occupation, occupation) is None:
        ids = session.execute(select(Occupation.id).order_by(Occupation.id)).scalars()
        raise BadUserInput(
            f"occupation must be an occupation id ({id_ranges(list(ids))}; the occupations query names "
            "them), or left out"
        )


def id_ranges(ids: Sequence[int]) -> str:
    """Return sorted ids as ranges, "0-20, 23"."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in runs) or "none"


def create_user(
    *,
    session: Session,
    gender: str | None = None,
    age: int | None = None,
    occupation: int | None = None,
    zip_code: str | None = None,
) -> User:
    """Insert a user and return it (the caller commits); demographics left out are unknown."""
    check_gender_and_age(gender, age)
    if occupation is not None:
        check_occupation(session=session, occupation=occupation)
    zip_code = zip_code.strip() if zip_code is not None else None
    # ASCII letters, digits and dashes, not only dashes.
    if zip_code is not None and not re.fullmatch(r"(?=.*[A-Za-z0-9])[A-Za-z0-9-]{1,10}", zip_code):
        raise BadUserInput("zipCode must be 1 to 10 letters, digits or dashes, or left out")
    user = User(gender=gender, age=age, occupation_id=occupation, zip_code=zip_code)
    session.add(user)
    session.flush()
    return user
