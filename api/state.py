"""What the app's lifespan creates once and every request shares."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from api.settings import Settings
from api.vectors.store import VectorStore
from api.versions.registry import ModelRegistry


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker
    store: VectorStore
    models: ModelRegistry
