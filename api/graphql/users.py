"""GraphQL types for users."""

from __future__ import annotations

import strawberry

from api.graphql.context import Info
from api.graphql.movies import Recommendation, recommend
from api.graphql.ratings import RatingConnection, ratings_connection
from api.recommend.pipeline import recommend_user
from api.users.models import Occupation as OccupationRow
from api.users.models import User as UserRow


@strawberry.type(description="An occupation a user may have: ML-1M's, then those imported datasets named.")
class Occupation:
    id: int
    name: str

    @classmethod
    def from_row(cls, row: OccupationRow) -> Occupation:
        return cls(id=row.id, name=row.name)


@strawberry.type(description="A user and their demographics; each is null when unknown.")
class User:
    id: int
    gender: str | None = strawberry.field(description="F or M; null when unknown.")
    age: int | None = strawberry.field(
        description="ML-1M age bucket: 1, 18, 25, 35, 45, 50 or 56; null when unknown."
    )
    occupation_id: int | None = strawberry.field(
        description="Occupation id (ML-1M's 0-20, then those datasets named; the occupations query lists "
        "them); null when unknown."
    )
    zip_code: str | None = strawberry.field(description="Null when unknown.")

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            id=row.id, gender=row.gender, age=row.age, occupation_id=row.occupation_id, zip_code=row.zip_code
        )

    @strawberry.field(description="Occupation name, e.g. 'programmer'; null when unknown.")
    async def occupation(self, info: Info) -> str | None:
        if self.occupation_id is None:
            return None
        return await info.context.loaders.occupation_name.load(self.occupation_id)

    @strawberry.field(description="The user's ratings, newest first.")
    async def ratings(self, info: Info, first: int = 20, after: str | None = None) -> RatingConnection:
        return await ratings_connection(info, self.id, first, after)

    @strawberry.field(description="Recommendations for this user, as the top-level query gives them.")
    async def recommendations(self, info: Info, limit: int = 10) -> list[Recommendation]:
        return await recommend(info, recommend_user, user_id=self.id, limit=limit)
