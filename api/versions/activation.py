"""Activate a model version: build (or reuse) its Milvus collection, then switch in one transaction."""

from __future__ import annotations

import logging
import shutil

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from api.errors import BadUserInput
from api.vectors.store import VectorStore
from api.versions.models import Activation
from api.versions.service import (
    active_version,
    collection_name,
    end_experiment,
    get_version,
    running_experiment,
    servable_artifact,
    set_active,
)
from api.versions.training_data import read_movies
from ml.serving import LoadedModel, MovieFeatures

log = logging.getLogger(__name__)


def build_collection(*, session: Session, store: VectorStore, version_id: int, model: LoadedModel) -> str:
    """Return the name of the version's collection, holding a vector for every movie in the database:
    movies added after training are encoded from their features. A complete collection is reused."""
    name = collection_name(version_id)
    movies = read_movies(session=session)
    if store.exists(name) and store.count(name) == len(movies):
        return name
    rows = {int(m): i for i, m in enumerate(model.movie_ids.tolist())}
    vectors = np.empty((len(movies), model.dim), dtype=np.float32)
    for i, m in enumerate(movies):
        row = rows.get(m.id)
        features = MovieFeatures(m.title, m.year, m.genres, m.id, m.description, m.tags)
        vectors[i] = model.encode_movie(features) if row is None else model.movie_vectors[row]
    store.create(name, dim=model.dim, expected_rows=len(movies))
    store.upsert(name, [m.id for m in movies], vectors, [m.genres for m in movies], [m.year for m in movies])
    log.info("built collection %s with %d movies", name, len(movies))
    return name


def activate(*, sessions: sessionmaker, store: VectorStore, version_id: int, by: str = "cli") -> str:
    """Make version_id the active version, recording who switched (`by`); return its collection's name."""
    with sessions() as session:
        model = LoadedModel.load(servable_artifact(session=session, version_id=version_id))
        name = build_collection(session=session, store=store, version_id=version_id, model=model)
    store.load(name)  # a reused collection (a rollback) may not be loaded
    with sessions.begin() as session:
        previous = active_version(session=session)
        set_active(session=session, version_id=version_id, collection=name)
        previous_id = previous.id if previous else None
        if previous_id != version_id:  # `movierec up` re-activates: no switch to record
            # An experiment's control is the version that was active: a switch ends it.
            if (experiment := running_experiment(session=session, lock=True)) is not None:
                end_experiment(session, experiment, f"version {version_id} activated by {by}")
            session.add(
                Activation(version_id=version_id, previous_version_id=previous_id, activated_by=by[:64])
            )
    return name


def delete_version(*, sessions: sessionmaker, store: VectorStore, version_id: int) -> None:
    """Delete a version that is neither active nor training: its row, its collection and its directory."""
    with sessions.begin() as session:
        version = get_version(session=session, version_id=version_id)
        if version.is_active:
            raise BadUserInput(f"model version {version_id} is active; activate another version first")
        if version.status in ("queued", "running"):
            raise BadUserInput(f"model version {version_id} is still {version.status}")
        # Milvus first: if it fails, the row stays and a retry finds everything it needs.
        store.drop(collection_name(version_id))
        if version.artifact_path:
            shutil.rmtree(version.artifact_path, ignore_errors=True)
        session.delete(version)
    log.info("deleted model version %d", version_id)
