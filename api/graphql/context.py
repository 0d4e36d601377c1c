"""The per-operation context: one database session (closed by api.graphql.operation), the shared
state and fresh DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import strawberry
from sqlalchemy.orm import Session

from api.graphql.loaders import Loaders
from api.state import AppState
from api.versions.registry import ActiveModel


@dataclass
class Context:
    state: AppState
    _session: Session | None = field(default=None, repr=False)
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def session(self) -> Session:
        """Return this operation's session, opened on first use."""
        if self._session is None:
            self._session = self.state.sessions()
        return self._session

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.session, self.state.catalogue)
        return self._loaders

    def active_model(self) -> ActiveModel | None:
        """Return the active model; a session is opened only when the registry must look again."""
        models = self.state.models
        return models.current if models.is_fresh() else models.get(self.session)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


Info = strawberry.Info[Context, Any]
