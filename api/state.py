"""What the app's lifespan creates once and every request shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from api.movies.service import MovieCatalogue
from api.recommend.freshness import FreshnessBatcher, FreshnessReader
from api.recommend.memo import RecommendationMemo
from api.settings import Settings
from api.vectors.store import VectorStore
from api.versions.registry import ModelRegistry

if TYPE_CHECKING:
    from api.recommend.service import Recommended


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker
    store: VectorStore
    models: ModelRegistry
    freshness: FreshnessReader
    memo: RecommendationMemo[list[Recommended]] = field(default_factory=lambda: RecommendationMemo(0))
    freshness_batches: FreshnessBatcher = field(init=False)
    catalogue: MovieCatalogue = field(default_factory=lambda: MovieCatalogue())

    def __post_init__(self) -> None:
        self.freshness_batches = FreshnessBatcher(self.freshness)
