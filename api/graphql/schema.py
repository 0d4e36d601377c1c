"""The GraphQL schema: every query and mutation, the limits on cost, and the error codes."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from graphql import GraphQLError
from sqlalchemy.orm import Session
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import ExecutionContext
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from api.datasets.service import current_dataset
from api.db import from_epoch
from api.errors import BadUserInput, NotFound
from api.experiments.impressions import IMPRESSION_ID_MAX
from api.experiments.service import UnknownImpression, record_feedback
from api.graphql.context import Info
from api.graphql.datasets import Dataset
from api.graphql.movies import Movie, Recommendation, recommend
from api.graphql.operation import ClosedOperationHooks, OperationHooks
from api.graphql.pagination import Connection, check_bound, decode_cursor, encode_cursor
from api.graphql.permissions import allowed
from api.graphql.ratings import Rating
from api.graphql.scalars import UTC_DATETIME
from api.graphql.users import Occupation, User
from api.ids import parse_id
from api.movies import service as movies
from api.movies.models import Movie as MovieRow
from api.movies.search import parse_position
from api.ratings import writes as ratings
from api.recommend.pipeline import recommend_user
from api.recommend.service import Filters, recommend_for_profile, similar_movies
from api.settings import MIN_TOKEN_TTL_S
from api.users import service as users
from ml.serving import MovieFeatures


@strawberry.type(description="A page of movies.")
class MovieConnection(Connection[Movie]):
    pass


@strawberry.type(description="A page of users.")
class UserConnection(Connection[User]):
    pass


@strawberry.type(description="A signed token acting as one user; send it as `Authorization: Bearer <token>`.")
class UserToken:
    token: str
    user_id: int
    expires_at: datetime


@strawberry.input
class RatedMovieInput:
    movie_id: int
    rating: float = strawberry.field(description="0.5 to 5 stars, in half steps.")


@strawberry.input(description="A new user's demographics; leave out what is not known.")
class CreateUserInput:
    gender: str | None = None
    age: int | None = None
    occupation: int | None = None
    zip_code: str | None = None


@strawberry.input
class CreateMovieInput:
    title: str
    year: int | None = None
    genres: list[str] = strawberry.field(default_factory=list)


@strawberry.enum(description="What a user did with a movie they were shown, before any rating.")
class FeedbackKind(Enum):
    CLICK = "click"
    WATCH = "watch"
    DISMISS = "dismiss"


@strawberry.type(description="Feedback on a movie an impression showed.")
class Feedback:
    impression_id: strawberry.ID
    movie_id: int
    kind: FeedbackKind
    recorded_at: datetime


@strawberry.type(description="The model version that serves recommendations.")
class ModelInfo:
    version: int
    trained_at: datetime | None
    collection: str
    metrics: JSON = strawberry.field(description="Every metric the training run recorded.")
    hr_at_10: float | None = strawberry.field(
        description="Test HR@10, NCF protocol: the held-out movie among 99 sampled unrated ones.",
    )
    ndcg_at_10: float | None = strawberry.field(description="Test NDCG@10, NCF protocol.")
    full_hr_at_10: float | None = strawberry.field(
        description="Test HR@10 ranking the held-out movie against every movie the user had not rated.",
    )
    full_ndcg_at_10: float | None = strawberry.field(description="Test NDCG@10, full ranking.")
    recall_at_20: float | None = strawberry.field(description="Test Recall@20, full ranking.")


@strawberry.type
class Query:
    @strawberry.field(
        description="A movie by id; null, with a NOT_FOUND error, when there is none.",
        permission_classes=[allowed()],
    )
    async def movie(self, info: Info, id: int) -> Movie | None:
        return Movie.from_row(await info.context.run(lambda s: movies.get_movie(session=s, movie_id=id)))

    @strawberry.field(
        description="Movies filtered by genre and years; paginated. Without `search`, by id; with it, the "
        "movies whose title has a word beginning with each of its words: those where each is a whole "
        "word first, then the most rated, then by id.",
        permission_classes=[allowed()],
    )
    async def movies(
        self,
        info: Info,
        search: str | None = None,
        genre: str | None = None,
        year_from: int | None = None,
        year_to: int | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> MovieConnection:
        check_bound(first, "first")
        if search is not None and len(search) > 200:
            raise BadUserInput("search must be at most 200 characters")
        if search:
            position = decode_cursor("movie-search", after, parse_position)
            found = await info.context.run(
                lambda s: movies.search_movies(
                    session=s,
                    search=search,
                    first=first,
                    after=position,
                    genre=genre,
                    year_from=year_from,
                    year_to=year_to,
                )
            )
            return MovieConnection.of(
                found,
                first,
                lambda r: encode_cursor("movie-search", r[1].cursor_value()),
                lambda r: Movie.from_row(r[0]),
            )
        after_id = decode_cursor("movie", after, parse_id)
        rows = await info.context.run(
            lambda s: movies.list_movies(
                session=s, first=first, after_id=after_id, genre=genre, year_from=year_from, year_to=year_to
            )
        )
        return MovieConnection.of(rows, first, lambda r: encode_cursor("movie", str(r.id)), Movie.from_row)

    @strawberry.field(
        description="A user by id; null, with a NOT_FOUND error, when there is none.",
        permission_classes=[allowed("read", own="id")],
    )
    async def user(self, info: Info, id: int) -> User | None:
        return User.from_row(await info.context.run(lambda s: users.get_user(session=s, user_id=id)))

    @strawberry.field(description="Users by id; paginated.", permission_classes=[allowed("read")])
    async def users(self, info: Info, first: int = 20, after: str | None = None) -> UserConnection:
        check_bound(first, "first")
        after_id = decode_cursor("user", after, parse_id)
        rows = await info.context.run(lambda s: users.list_users(session=s, first=first, after_id=after_id))
        return UserConnection.of(rows, first, lambda r: encode_cursor("user", str(r.id)), User.from_row)

    @strawberry.field(description="Every genre name.", permission_classes=[allowed()])
    async def genres(self, info: Info) -> list[str]:
        return await info.context.run(lambda s: movies.genre_names(session=s))

    @strawberry.field(
        description="The data the database holds, as its newest import recorded it; null before any import.",
        permission_classes=[allowed()],
    )
    async def dataset(self, info: Info) -> Dataset | None:
        row = await info.context.run(lambda s: current_dataset(session=s))
        return None if row is None else Dataset.from_row(row)

    @strawberry.field(description="Every occupation, by id.", permission_classes=[allowed()])
    async def occupations(self, info: Info) -> list[Occupation]:
        rows = await info.context.run(lambda s: users.list_occupations(session=s))
        return [Occupation.from_row(r) for r in rows]

    @strawberry.field(
        description="A user's top movies, read from their latest ratings at request time.",
        permission_classes=[allowed("read", own="user_id")],
    )
    async def recommendations(
        self,
        info: Info,
        user_id: int,
        limit: int = 10,
        genres: list[str] | None = None,
        year_from: int | None = None,
        year_to: int | None = None,
        exclude_rated: bool = True,
    ) -> list[Recommendation]:
        return await recommend(
            info,
            recommend_user,
            user_id=user_id,
            limit=limit,
            filters=Filters(genres, year_from, year_to),
            exclude_rated=exclude_rated,
        )

    @strawberry.field(
        description="Movies closest to a movie in the active model.", permission_classes=[allowed()]
    )
    async def similar_movies(self, info: Info, movie_id: int, limit: int = 10) -> list[Recommendation]:
        return await recommend(info, similar_movies, movie_id=movie_id, limit=limit)

    @strawberry.field(
        description="Top movies for a visitor without an account: a few ratings and, when known, "
        "demographics.",
        permission_classes=[allowed()],
    )
    async def recommendations_for_profile(
        self,
        info: Info,
        rated_movies: list[RatedMovieInput],
        gender: str | None = None,
        age: int | None = None,
        occupation: int | None = None,
        limit: int = 10,
        genres: list[str] | None = None,
        year_from: int | None = None,
        year_to: int | None = None,
    ) -> list[Recommendation]:
        return await recommend(
            info,
            recommend_for_profile,
            gender=gender,
            age=age,
            occupation=occupation,
            rated=[(r.movie_id, r.rating) for r in rated_movies],
            limit=limit,
            filters=Filters(genres, year_from, year_to),
        )

    @strawberry.field(
        description="The model version that serves, or null before the first training.",
        permission_classes=[allowed()],
    )
    async def model_info(self, info: Info) -> ModelInfo | None:
        active = await info.context.state.active_model()
        if active is None:
            return None
        m = active.metrics
        return ModelInfo(
            version=active.version_id,
            trained_at=active.trained_at,
            collection=active.collection,
            metrics=m,  # type: ignore[arg-type]  # JSON is a scalar alias of any JSON value
            hr_at_10=m.get("hr@10"),
            ndcg_at_10=m.get("ndcg@10"),
            full_hr_at_10=m.get("recall@10"),  # one held-out movie: recall@10 is the full-ranking hit rate
            full_ndcg_at_10=m.get("full_ndcg@10"),
            recall_at_20=m.get("recall@20"),
        )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Create a user from demographics.", permission_classes=[allowed("users:write")]
    )
    async def create_user(self, info: Info, input: CreateUserInput) -> User:
        row = await info.context.run(lambda s: users.create_user(session=s, **vars(input)), write=True)
        return User.from_row(row)

    @strawberry.mutation(
        description="Rate a movie 0.5 to 5 stars in half steps (replaces an earlier rating of it).",
        permission_classes=[allowed("users:write", own="user_id")],
    )
    async def rate_movie(self, info: Info, user_id: int, movie_id: int, rating: float) -> Rating:
        row = await info.context.run(
            lambda s: ratings.rate_movie(session=s, user_id=user_id, movie_id=movie_id, rating=rating),
            write=True,
        )
        return Rating.from_row(row)

    @strawberry.mutation(
        description="Delete a user's rating of a movie; true when it existed.",
        permission_classes=[allowed("users:write", own="user_id")],
    )
    async def delete_rating(self, info: Info, user_id: int, movie_id: int) -> bool:
        await info.context.run(
            lambda s: ratings.delete_rating(session=s, user_id=user_id, movie_id=movie_id), write=True
        )
        return True

    @strawberry.mutation(
        description="Record what a user did with a movie of a recommendations list, named by the list's "
        "impressionId (a click, a watch, a dismiss; ratings count by themselves).",
        permission_classes=[allowed("users:write", own="user_id")],
    )
    async def record_feedback(
        self, info: Info, user_id: int, impression_id: strawberry.ID, movie_id: int, kind: FeedbackKind
    ) -> Feedback:
        impression = parse_id(impression_id, IMPRESSION_ID_MAX)
        if impression is None:
            raise NotFound(f"impression {impression_id[:24]!r} does not exist")
        await info.context.state.impressions.written(impression)  # one this process still has queued
        # Another process's impression lands within one batch write of its answer: look a few times.
        async for attempt in AsyncRetrying(**IMPRESSION_LANDING):
            with attempt:
                row = await info.context.run(
                    lambda s: record_feedback(
                        session=s,
                        user_id=user_id,
                        impression_id=impression,
                        movie_id=movie_id,
                        kind=kind.value,
                    ),
                    write=True,
                )
        return Feedback(impression_id=impression_id, movie_id=movie_id, kind=kind, recorded_at=row.at)

    @strawberry.mutation(
        description="Add a movie; it is recommendable at once when a model is active.",
        permission_classes=[allowed("catalogue:write")],
    )
    async def create_movie(self, info: Info, input: CreateMovieInput) -> Movie:
        state = info.context.state
        if input.year is not None and not 1800 <= input.year <= 2100:
            raise BadUserInput("year must be between 1800 and 2100")

        def create(session: Session) -> MovieRow:
            row = movies.create_movie(session=session, **vars(input))
            active = state.models.get(session)
            # A running experiment's treatment serves too: its collection gets the movie as well.
            experiment = state.models.experiment
            serving = [active, *([experiment.treatment] if experiment else [])] if active else []
            genres = movies.check_genres(session=session, genres=input.genres) if serving else []
            for model in serving:
                # The vector goes in before the commit: a Milvus failure leaves no movie without a vector.
                vector = model.model.encode_movie(MovieFeatures(row.title, row.year, tuple(genres), row.id))
                state.store.upsert(model.collection, [row.id], vector[None, :], [genres], [row.year])
            return row

        return Movie.from_row(await state.run_blocking(create, write=True))

    @strawberry.mutation(
        description="A token for a browser front end to act as one user: it reads that user's profile, "
        "ratings and recommendations and rates as them, until it expires or the key that asked for it "
        "is revoked. ttlSeconds defaults to, and is at most, what the service's settings say.",
        permission_classes=[allowed("tokens:issue")],
    )
    async def issue_user_token(self, info: Info, user_id: int, ttl_seconds: int | None = None) -> UserToken:
        state = info.context.state
        longest = state.settings.token_max_ttl_s
        ttl_seconds = state.settings.token_ttl_s if ttl_seconds is None else ttl_seconds
        if not MIN_TOKEN_TTL_S <= ttl_seconds <= longest:
            raise BadUserInput(f"ttlSeconds must be between {MIN_TOKEN_TTL_S} and {longest}")
        await info.context.run(lambda s: users.get_user(session=s, user_id=user_id))
        # The minting key goes in the token: revoking the key ends the token (api.access.backend).
        token, expires = state.access.mint(user_id, info.context.caller.key_id, ttl_seconds)
        return UserToken(token=token, user_id=user_id, expires_at=from_epoch(expires))


IMPRESSION_LANDING: dict[str, Any] = {
    "retry": retry_if_exception_type(UnknownImpression),
    "stop": stop_after_attempt(6),
    "wait": wait_exponential(multiplier=0.05, max=0.2),  # 0.05, 0.1, 0.2, 0.2, 0.2 s: six reads at most
    "reraise": True,
}


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log nothing here: api.graphql.errors logs unexpected errors; client errors are not the server's."""


class QuietExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, whose errors in variables suggest no input field ("Did you mean ...")."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        return super().build(*args, **{**kwargs, "hide_suggestions": True})


def build_schema(*, introspection: bool = True) -> strawberry.Schema:
    """Return the schema; without introspection, `__schema` and `__type` fail and no error suggests a name."""
    return Schema(
        query=Query,
        mutation=Mutation,
        extensions=[OperationHooks if introspection else ClosedOperationHooks],
        execution_context_class=None if introspection else QuietExecutor,
        config=StrawberryConfig(scalar_map={datetime: UTC_DATETIME}),
    )
