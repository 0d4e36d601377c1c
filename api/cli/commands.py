"""The commands of `movierec` but serving: migrations, data, training, model versions and API keys."""

from __future__ import annotations

import argparse
import getpass
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, make_url, select
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.orm import sessionmaker

    from api.vectors.store import VectorStore

from api.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
# Under var_dir, the directory the last import read, which `up` compares with the data dir.
IMPORTED_FROM = "imported-from"


class CommandError(Exception):
    """An error the user can fix, which a command raises (as it may a ServiceError): one line, status 1."""


def alembic_config(settings: Settings) -> Config:
    """Return the Alembic configuration of the repository, pointed at the settings' database."""
    from alembic.config import Config

    candidates = (REPO_ROOT / "alembic.ini", Path.cwd() / "alembic.ini")
    ini = next((path for path in candidates if path.is_file()), None)
    if ini is None:  # an installed package without its repository: run from the directory holding it
        raise CommandError("alembic.ini not found; run movierec from the directory that holds it")
    config = Config(str(ini))
    config.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    return config


def safe_url(settings: Settings) -> str:
    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def batch_sessions(settings: Settings) -> sessionmaker:
    from api.db import make_batch_engine, make_session_factory

    return make_session_factory(make_batch_engine(settings.resolved_database_url))


@contextmanager
def vector_store(settings: Settings) -> Iterator[VectorStore]:
    """Yield a store of the settings' Milvus, closed after the block with the Lite server it started: `up`
    goes on to serve from a server of its own, and Milvus Lite runs one server per file."""
    from api.vectors.lite import release_lite_server
    from api.vectors.store import VectorStore

    store = VectorStore(settings.resolved_milvus_uri)
    try:
        yield store
    finally:
        store.close()
        release_lite_server(store.uri)


def cmd_db(args: argparse.Namespace, settings: Settings) -> None:
    from alembic import command

    migrate = command.upgrade if args.db_command == "upgrade" else command.downgrade
    migrate(alembic_config(settings), args.revision)
    print(f"database at {args.revision} ({safe_url(settings)})")


def cmd_data_import(args: argparse.Namespace, settings: Settings) -> None:
    """Import a dataset in one transaction: a failure leaves nothing behind, a re-run completes an
    interrupted import without duplicates. docs/data.md shows each layout."""
    from api.dataimport.service import (
        MovieTextError,
        UnknownGenreError,
        UnknownOccupationError,
        import_dataset,
        total_rows,
    )
    from api.dataimport.sources import resolve_source
    from api.datasets.service import record_import
    from api.ratings.writes import BulkLoadError
    from ml.movielens.download import DownloadError
    from ml.movielens.layouts import load
    from ml.progress import progress

    try:
        source = resolve_source(args.source, settings)
        if source.notice:
            print(source.notice)
        print(f"reading {source.description}")
        loaded = load(source.directory, args.format)
        print(f"layout: {loaded.layout.name}, {loaded.layout.description}")
        for note in loaded.notes:
            print(f"note: {note}")
        with (
            progress(total_rows(loaded.dataset), "importing", "rows", enabled=not args.quiet) as bar,
            batch_sessions(settings).begin() as session,
        ):
            counts = import_dataset(
                session=session,
                dataset=loaded.dataset,
                batch_size=settings.import_batch_size,
                progress=bar.update,
            )
            record_import(
                session=session,
                description=source.description,
                layout=loaded.layout.name,
                synthetic=source.synthetic,
                users=counts.users,
                movies=counts.movies,
                ratings=counts.ratings,
            )
    # The import's errors roll it back: nothing was written.
    except (DownloadError, MovieTextError, UnknownGenreError, UnknownOccupationError, BulkLoadError) as error:
        raise CommandError(str(error)) from error
    print(f"imported: {counts}")
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    (settings.var_dir / IMPORTED_FROM).write_text(f"{source.directory.resolve()}\n", encoding="utf-8")


def data_dir_note(settings: Settings) -> str | None:
    """Return one line when MOVIEREC_DATA_DIR is not the directory the database was imported from."""
    if settings.data_dir is None:
        return None
    path = settings.var_dir / IMPORTED_FROM
    recorded = path.read_text(encoding="utf-8").strip() if path.exists() else ""
    if recorded == str(settings.data_dir.resolve()):
        return None
    was = f"from {recorded}" if recorded else "from a source not recorded here"
    return (
        f"data: MOVIEREC_DATA_DIR is {settings.data_dir}, but the database was imported {was}; "
        "serving what it holds (--reimport to import the new directory)"
    )


def cmd_data_sample(args: argparse.Namespace, _settings: Settings) -> None:
    from ml.movielens.scale import write_ml25m_shaped
    from ml.movielens.synthetic import write_synthetic

    if args.ml25m is None:
        out = write_synthetic(
            Path(args.out), users=args.users, movies=args.movies, seed=args.seed, text=args.text
        )
        print(f"wrote a synthetic sample to {out}")
        return
    if not 0 < args.ml25m <= 1:
        raise CommandError("--ml25m is a share of ML-25M's counts, above 0 and at most 1")
    try:
        shape = write_ml25m_shaped(Path(args.out), scale=args.ml25m, seed=args.seed)
    except ValueError as error:
        raise CommandError(str(error)) from None
    print(f"wrote an ML-25M-shaped dataset ({shape.users} users, {shape.movies} movies, "
          f"{shape.ratings} ratings) to {args.out} in the MovieLens CSV layout")  # fmt: skip


def cmd_summary(_args: argparse.Namespace, settings: Settings) -> None:
    from api.dataimport.service import count_rows

    with batch_sessions(settings)() as session:
        counts = count_rows(session=session)
    print(f"database: {safe_url(settings)}\n  {counts}\nmilvus:   {settings.resolved_milvus_uri}")


# The train command's hyperparameter options, as TrainConfig names them (unset: the config's default).
TRAIN_OPTIONS: dict[str, tuple[type, str]] = {
    "epochs": (int, "upper bound on epochs (early stopping may end sooner)"),
    "examples_per_epoch": (int, "train each epoch on a new random sample of this many ratings"),
    "eval_users": (int, "validate and test on at most this many users"),
    "learning_rate": (float, "Adam step size"),
    "batch_size": (int, "positives per step (the in-batch negatives)"),
    "embedding_dim": (int, "width of the id and feature embeddings"),
    "seed": (int, "random seed"),
}


def cmd_train(args: argparse.Namespace, settings: Settings) -> None:
    """Train the two-tower model on every rating in the database (each user's latest two held out for
    validation and test), save the version under the model dir, record it in model_versions and build
    its Milvus collection."""
    from api.versions.service import SHOWN_METRICS, get_version
    from api.versions.training import run_training, sigterm_interrupts
    from ml.config import TrainConfig
    from ml.split import InsufficientDataError
    from ml.training_loop import TrainingError

    try:
        config = TrainConfig(**{k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None})
    except (TypeError, ValueError) as error:
        raise CommandError(f"bad hyperparameters: {error}") from error
    sessions = batch_sessions(settings)
    try:
        with sigterm_interrupts("the command was stopped (SIGTERM)"):
            version_id = run_training(
                sessions=sessions,
                model_dir=settings.resolved_model_dir,
                config=config,
                started_by=f"cli:{getpass.getuser()}",
                progress_bar=not args.quiet,
                on_started=lambda v: print(f"training model version {v}"),
            )
    except (InsufficientDataError, TrainingError) as error:
        raise CommandError(str(error)) from error
    with sessions() as session:
        metrics = get_version(session=session, version_id=version_id).metrics or {}
    shown = ", ".join(f"{label} {metrics[k]:.4f}" for k, label in SHOWN_METRICS if k in metrics)
    print(f"version {version_id} trained: {shown}")
    if args.activate:
        activate_and_keep(settings, version_id, quiet=args.quiet)


def activate_and_keep(
    settings: Settings, version_id: int, *, only_missing: bool = False, quiet: bool = False
) -> None:
    """Activate a version, then keep its users' lists (with only_missing, only when no list is kept)."""
    from api.recommend.models import KeptList
    from api.versions.activation import activate

    sessions = batch_sessions(settings)
    with vector_store(settings) as store:
        name = activate(sessions=sessions, store=store, version_id=version_id, by=f"cli:{getpass.getuser()}")
        print(f"version {version_id} is active (Milvus collection {name})")
        if only_missing:  # lists of another version only make their users' next requests compute
            with sessions() as session:
                if session.execute(select(func.count()).select_from(KeptList)).scalar_one():
                    return
        keep_with_progress(sessions, store, version_id, quiet=quiet)


def keep_with_progress(sessions: sessionmaker, store: VectorStore, version_id: int, *, quiet: bool) -> None:
    """Keep every user's list for a version, with a progress bar, then say how many were kept."""
    from api.recommend.kept import Superseded, keep_version_lists
    from ml.progress import Progress, progress

    bar: Progress | None = None
    shown, users = 0, 0

    def on_progress(done: int, total: int) -> None:
        nonlocal bar, shown, users
        bar = bar or progress(total, "keeping recommendations", "users", enabled=not quiet)
        bar.update(done - shown)
        shown, users = done, total

    started = time.monotonic()
    try:
        stored = keep_version_lists(
            sessions=sessions, store=store, version_id=version_id, progress=on_progress
        )
    except Superseded as superseded:
        raise CommandError(f"stopped keeping the lists of version {version_id}: {superseded}") from None
    finally:
        if bar is not None:
            bar.close()
    # keep_lists skips exactly the users without ratings
    skipped = f"; {users - stored} without ratings get the popular movies" if users > stored else ""
    print(f"kept the recommendations of {stored} users in {time.monotonic() - started:.1f} s{skipped}")


def cmd_versions_keep(args: argparse.Namespace, settings: Settings) -> None:
    from api.versions.service import active_version

    sessions = batch_sessions(settings)
    with sessions() as session:
        active = active_version(session=session)
    if active is None:
        raise CommandError("no version is active; run `movierec train`")
    with vector_store(settings) as store:
        keep_with_progress(sessions, store, active.id, quiet=args.quiet)


def cmd_versions_list(_args: argparse.Namespace, settings: Settings) -> None:
    from api.versions.service import list_versions

    with batch_sessions(settings)() as session:
        versions = list_versions(session=session)
    if not versions:
        print("no model versions yet; run `movierec train`")
    for v in versions:
        m = v.metrics or {}
        figures = f"HR@10 {m['hr@10']:.4f} NDCG@10 {m['ndcg@10']:.4f}" if "hr@10" in m else ""
        active = "*" if v.is_active else " "
        started = f"{v.started_at:%Y-%m-%d %H:%M}" if v.started_at else ""
        print(f"{active} v{v.id:<4} {v.status:<10} {started}  {figures}  {v.error or ''}".rstrip())


def cmd_versions_activate(args: argparse.Namespace, settings: Settings) -> None:
    activate_and_keep(settings, args.version)


def cmd_versions_delete(args: argparse.Namespace, settings: Settings) -> None:
    from api.versions.activation import delete_version

    with vector_store(settings) as store:
        delete_version(sessions=batch_sessions(settings), store=store, version_id=args.version)
    print(f"deleted model version {args.version}, its collection and its files")


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> None:
    from api.access.keys import create_key

    with batch_sessions(settings).begin() as session:
        row, key = create_key(session=session, name=args.name, scopes=args.scope)
    print(f"created API key {row.key_id} ({row.scopes}); it is shown this once:\n{key}")


def cmd_keys_list(_args: argparse.Namespace, settings: Settings) -> None:
    from api.access.keys import list_keys

    with batch_sessions(settings)() as session:
        keys = list_keys(session=session)
    if not keys:
        print("no API keys yet; run `movierec keys create --name NAME --scope read`")
    for k in keys:
        used = f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never"
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(f"{k.key_id}  {k.name:<24} {k.scopes:<40} last used {used:<16} {state}")


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> None:
    from api.access.keys import KEY_CACHE_S, revoke_key

    with batch_sessions(settings).begin() as session:
        revoke_key(session=session, key_id=args.key_id)
    print(f"revoked API key {args.key_id}; running servers refuse it and its tokens within {KEY_CACHE_S:g} s")


def cmd_schema(args: argparse.Namespace, _settings: Settings) -> None:
    from api.graphql.schema import build_schema

    sdl = build_schema().as_str() + "\n"
    if args.out:
        Path(args.out).write_text(sdl, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(sdl, end="")


def database_problem(settings: Settings, error: DBAPIError) -> str:
    """Return one line saying why the database failed: unreachable, not migrated, or the error itself."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    url = safe_url(settings)
    try:
        with batch_sessions(settings)() as session:
            current = MigrationContext.configure(session.connection()).get_current_revision()
    except DBAPIError as unreachable:
        return f"cannot use the database at {url}: {unreachable.orig}"
    head = ScriptDirectory.from_config(alembic_config(settings)).get_current_head()
    if current != head:
        return f"the database at {url} has schema {current or 'none'}, not {head}: run `movierec db upgrade`"
    return f"the database at {url} refused: {error.orig}"
