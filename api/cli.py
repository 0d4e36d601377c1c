"""The `movierec` command: migrations, data import, training, model versions, API keys and serving."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import func, make_url, select
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.orm import sessionmaker

    from api.vectors.store import VectorStore

from api.access.scopes import SCOPES
from api.errors import ServiceError
from api.metrics import LOG_FORMAT, log_config
from api.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
# One API process per core, up to 4: each holds its own model in memory.
DEFAULT_WORKERS = min(os.cpu_count() or 1, 4)
# Under var_dir, the directory the last import read, which `up` compares with the data dir.
IMPORTED_FROM = "imported-from"
Command = Callable[[argparse.Namespace, Settings], None]


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


def _safe_url(settings: Settings) -> str:
    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def _sessions(settings: Settings) -> sessionmaker:
    from api.db import make_batch_engine, make_session_factory

    return make_session_factory(make_batch_engine(settings.resolved_database_url))


def _store(settings: Settings) -> closing[VectorStore]:
    from api.vectors.store import VectorStore

    return closing(VectorStore(settings.resolved_milvus_uri))


def cmd_db(args: argparse.Namespace, settings: Settings) -> None:
    from alembic import command

    migrate = command.upgrade if args.db_command == "upgrade" else command.downgrade
    migrate(alembic_config(settings), args.revision)
    print(f"database at {args.revision} ({_safe_url(settings)})")


def cmd_data_import(args: argparse.Namespace, settings: Settings) -> None:
    """Import a dataset in one transaction: a failure leaves nothing behind, a re-run completes an
    interrupted import without duplicates. docs/data.md shows each layout."""
    from api.dataimport.service import MovieTextError, UnknownGenreError, import_dataset, total_rows
    from api.dataimport.sources import resolve_source
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
            _sessions(settings).begin() as session,
        ):
            counts = import_dataset(
                session=session,
                dataset=loaded.dataset,
                batch_size=settings.import_batch_size,
                progress=bar.update,
            )
    # The import's errors roll it back: nothing was written.
    except (DownloadError, MovieTextError, UnknownGenreError, BulkLoadError) as error:
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

    with _sessions(settings)() as session:
        counts = count_rows(session=session)
    print(f"database: {_safe_url(settings)}\n  {counts}\nmilvus:   {settings.resolved_milvus_uri}")


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
    from api.versions.training import run_training
    from ml.config import TrainConfig
    from ml.split import InsufficientDataError
    from ml.training_loop import TrainingError

    try:
        config = TrainConfig(**{k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None})
    except (TypeError, ValueError) as error:
        raise CommandError(f"bad hyperparameters: {error}") from error
    sessions = _sessions(settings)
    try:
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
        _activate(settings, version_id, quiet=args.quiet)


def _activate(
    settings: Settings, version_id: int, *, only_missing: bool = False, quiet: bool = False
) -> None:
    """Activate a version, then keep its users' lists (with only_missing, only when no list is kept)."""
    from api.recommend.models import KeptList
    from api.versions.activation import activate

    sessions = _sessions(settings)
    with _store(settings) as store:
        name = activate(sessions=sessions, store=store, version_id=version_id, by=f"cli:{getpass.getuser()}")
        print(f"version {version_id} is active (Milvus collection {name})")
        if only_missing:  # lists of another version only make their users' next requests compute
            with sessions() as session:
                if session.execute(select(func.count()).select_from(KeptList)).scalar_one():
                    return
        _keep_lists(sessions, store, version_id, quiet=quiet)


def _keep_lists(sessions: sessionmaker, store: VectorStore, version_id: int, *, quiet: bool) -> None:
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

    sessions = _sessions(settings)
    with sessions() as session:
        active = active_version(session=session)
    if active is None:
        raise CommandError("no version is active; run `movierec train`")
    with _store(settings) as store:
        _keep_lists(sessions, store, active.id, quiet=args.quiet)


def cmd_versions_list(_args: argparse.Namespace, settings: Settings) -> None:
    from api.versions.service import list_versions

    with _sessions(settings)() as session:
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
    _activate(settings, args.version)


def cmd_versions_delete(args: argparse.Namespace, settings: Settings) -> None:
    from api.versions.activation import delete_version

    with _store(settings) as store:
        delete_version(sessions=_sessions(settings), store=store, version_id=args.version)
    print(f"deleted model version {args.version}, its collection and its files")


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> None:
    from api.access.keys import create_key

    with _sessions(settings).begin() as session:
        row, key = create_key(session=session, name=args.name, scopes=args.scope)
    print(f"created API key {row.key_id} ({row.scopes}); it is shown this once:\n{key}")


def cmd_keys_list(_args: argparse.Namespace, settings: Settings) -> None:
    from api.access.keys import list_keys

    with _sessions(settings)() as session:
        keys = list_keys(session=session)
    if not keys:
        print("no API keys yet; run `movierec keys create --name NAME --scope read`")
    for k in keys:
        used = f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never"
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(f"{k.key_id}  {k.name:<24} {k.scopes:<40} last used {used:<16} {state}")


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> None:
    from api.access.keys import KEY_CACHE_S, revoke_key

    with _sessions(settings).begin() as session:
        revoke_key(session=session, key_id=args.key_id)
    print(f"revoked API key {args.key_id}; running servers refuse it and its tokens within {KEY_CACHE_S:g} s")


def demo_key(settings: Settings) -> str:
    """Return the development demo's API key (every scope), kept in var/demo-api-key; a new one
    when the file is missing or its key was revoked."""
    from api.access.directory import LIVE
    from api.access.keys import create_key, split_key
    from api.access.models import ApiKey

    path = settings.var_dir / "demo-api-key"
    key = path.read_text(encoding="utf-8").strip() if path.exists() else ""
    parts = split_key(key)
    with _sessions(settings).begin() as session:
        if parts is None or session.execute(LIVE.where(ApiKey.key_id == parts[0])).first() is None:
            key = create_key(session=session, name="demo (movierec up)", scopes=list(SCOPES))[1]
            path.write_text(key + "\n", encoding="utf-8")
            path.chmod(0o600)
    return key


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    from api.server import serve

    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    banner = f"serving GraphQL on http://{args.host}:{args.port}/graphql ({args.workers} workers)"
    serve(
        settings,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=log_config(args.verbose),
        access_log=args.verbose,
        on_ready=lambda: print(banner, flush=True),
    )


def cmd_up(args: argparse.Namespace, settings: Settings) -> None:
    """Migrate the schema, import data into an empty database, train when no model is active (so a second
    run starts in seconds), then serve the API and dashboard."""
    import secrets

    from alembic import command

    from api.ratings.models import Rating
    from api.versions.service import active_version

    settings.var_dir.mkdir(parents=True, exist_ok=True)
    config = alembic_config(settings)
    config.attributes["configure_logger"] = False  # keep the command's logging as main set it
    command.upgrade(config, "head")
    with _sessions(settings)() as session:
        ratings = session.execute(select(func.count()).select_from(Rating)).scalar_one()
        active = active_version(session=session)  # an import does not change it
    if ratings == 0 or args.reimport:
        cmd_data_import(args, settings)
    else:
        print(f"data: {ratings} ratings already imported (--reimport to import again)")
        if note := data_dir_note(settings):
            print(note)
    if active is None or args.retrain:
        args.epochs = args.epochs if args.retrain else None  # up's --epochs counts with --retrain
        cmd_train(args, settings)
    else:
        print(f"model: version {active.id} is active (--retrain to train a new one)")
        # Rebuilds its collection and kept lists only if they are missing.
        _activate(settings, active.id, only_missing=True)
    password_source = "MOVIEREC_ADMIN_PASSWORD"
    if not settings.admin_password.get_secret_value():
        path = settings.var_dir / "admin-password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(12) + "\n", encoding="utf-8")
            path.chmod(0o600)
        os.environ["MOVIEREC_ADMIN_PASSWORD"] = path.read_text(encoding="utf-8").strip()
        password_source = f"the file {path} (set MOVIEREC_ADMIN_PASSWORD to choose one)"
    base = f"http://{args.host}:{args.port}"
    print(f"GraphQL: {base}/graphql\nadmin:   {base}/admin  (password: {password_source})", flush=True)
    if settings.demo_enabled:
        print(f"demo:    {base}/demo/  (MOVIEREC_DEMO=false turns it off)", flush=True)
    if settings.environment == "development":
        print(f"API key (every scope, for trying writes): {demo_key(settings)}", flush=True)
    cmd_serve(args, settings)


def cmd_schema(args: argparse.Namespace, _settings: Settings) -> None:
    from api.graphql.schema import build_schema

    sdl = build_schema().as_str() + "\n"
    if args.out:
        Path(args.out).write_text(sdl, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(sdl, end="")


def _command(group: Any, name: str, handler: Command, about: str, **options: Any) -> argparse.ArgumentParser:
    """Add the subcommand `name` that runs `handler`, described in `--help` by the handler's docstring."""
    parser = group.add_parser(name, help=about, description=handler.__doc__, **options)
    parser.set_defaults(handler=handler)
    return parser


def _group(commands: Any, name: str, about: str) -> Any:
    """Add the command `name` whose subcommands are added to what it returns."""
    parser = commands.add_parser(name, help=about)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every subcommand."""
    from ml.movielens.layouts import LAYOUTS

    parser = argparse.ArgumentParser(
        prog="movierec",
        description="Movie recommendations from a Paddle two-tower model, Milvus and MySQL. "
        "Settings come from MOVIEREC_* environment variables or a .env file.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Options several commands share, given to each as a parent parser.
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    version = argparse.ArgumentParser(add_help=False)
    version.add_argument("version", type=int, help="version id")
    serving = argparse.ArgumentParser(add_help=False)
    serving.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    serving.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    about = f"API processes sharing the port and Milvus Lite (default: one per core, here {DEFAULT_WORKERS})"
    serving.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help=about)

    db = _group(commands, "db", "database schema (Alembic migrations)")
    about = "migrate the database to the latest schema (alembic upgrade)"
    upgrade = _command(db, "upgrade", cmd_db, about)
    upgrade.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    down = _command(db, "downgrade", cmd_db, "migrate the database back (alembic downgrade)")
    down.add_argument("revision", help="target revision, e.g. base or -1")

    data = _group(commands, "data", "MovieLens data: import, synthetic sample")
    about = "import users, movies and ratings (idempotent: a re-run changes nothing)"
    imp = _command(data, "import", cmd_data_import, about, parents=[quiet])
    imp.add_argument(
        "--source",
        default="auto",
        help="ml-1m (download the official archive), sample (synthetic), a directory holding a "
        "dataset, or auto (default: MOVIEREC_DATA_DIR, else ml-1m, else the sample)",
    )
    imp.add_argument(
        "--format",
        default="auto",
        choices=["auto", *LAYOUTS],
        help="the directory's layout (default: auto, detected from its files and said)",
    )
    about = "write a synthetic dataset in the ML-1M format (with --text, the generic CSV layout)"
    sample = _command(data, "sample", cmd_data_sample, about)
    sample.add_argument("--out", required=True, help="directory to write the dataset's files into")
    sample.add_argument("--users", type=int, default=1000, help="number of users (default 1000)")
    sample.add_argument("--movies", type=int, default=600, help="number of movies (default 600)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument(
        "--text",
        action="store_true",
        help="give movies descriptions and tags that carry their taste, written in the generic CSV layout "
        "(users.csv, movies.csv, ratings.csv) since ML-1M's files have no place for them",
    )
    sample.add_argument(
        "--ml25m", type=float, metavar="SHARE",
        help="instead, an ML-25M-shaped dataset (162,541 users, 62,423 movies, 25,000,095 ratings, "
        "long tails, half stars) times SHARE, in the MovieLens CSV layout (1: full size, several minutes)",
    )  # fmt: skip

    about = "train a model version on the database's ratings and (by default) activate it"
    train = _command(commands, "train", cmd_train, about, parents=[quiet])
    for name, (kind, about) in TRAIN_OPTIONS.items():
        train.add_argument(f"--{name.replace('_', '-')}", type=kind, help=about)
    train.add_argument("--no-activate", dest="activate", action="store_false", help="do not make it active")

    versions = _group(commands, "versions", "model versions: list, activate, keep, delete")
    _command(versions, "list", cmd_versions_list, "every training run, newest first (* = active)")
    about = "build the version's Milvus collection, serve it and keep its users' lists"
    _command(versions, "activate", cmd_versions_activate, about, parents=[version])
    about = "compute every user's recommendations for the active version ahead of requests"
    _command(versions, "keep", cmd_versions_keep, about, parents=[quiet])
    about = "delete a version that is not active: row, collection, files"
    _command(versions, "delete", cmd_versions_delete, about, parents=[version])

    keys = _group(commands, "keys", "API keys for back ends: create, list, revoke")
    create = _command(keys, "create", cmd_keys_create, "a new key with scopes; printed once")
    create.add_argument("--name", required=True, help="who or what holds it")
    create.add_argument(
        "--scope", action="append", required=True, choices=sorted(SCOPES),
        help="repeat for several: " + "; ".join(f"{k}: {v}" for k, v in SCOPES.items()),
    )  # fmt: skip
    _command(keys, "list", cmd_keys_list, "every key, newest first")
    revoke = _command(keys, "revoke", cmd_keys_revoke, "stop a key working")
    revoke.add_argument("key_id", help="the key id that `keys list` shows")

    _command(commands, "serve", cmd_serve, "serve the GraphQL API with uvicorn", parents=[serving])
    about = "everything to a running service: migrate, import, train and index what is missing, serve"
    up = _command(commands, "up", cmd_up, about, parents=[serving])
    up.add_argument("--source", default="auto", help="data source for a first import (default: auto)")
    up.add_argument("--reimport", action="store_true", help="import the data again")
    up.add_argument("--retrain", action="store_true", help="train and activate a new model version")
    up.add_argument("--epochs", type=int, help="epochs when training (default: the model's)")
    # What up's import and training read of the options it does not have.
    up.set_defaults(**dict.fromkeys(TRAIN_OPTIONS), format="auto", quiet=False, activate=True)

    about = "print the GraphQL schema (SDL) for front ends' code generation"
    schema = _command(commands, "schema", cmd_schema, about)
    schema.add_argument("--out", help="write it to this file (the repository keeps schema.graphql)")
    _command(commands, "summary", cmd_summary, "print what the database holds")
    return parser


def _database_problem(settings: Settings, error: DBAPIError) -> str:
    """Return one line saying why the database failed: unreachable, not migrated, or the error itself."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    url = _safe_url(settings)
    try:
        with _sessions(settings)() as session:
            current = MigrationContext.configure(session.connection()).get_current_revision()
    except DBAPIError as unreachable:
        return f"cannot use the database at {url}: {unreachable.orig}"
    head = ScriptDirectory.from_config(alembic_config(settings)).get_current_head()
    if current != head:
        return f"the database at {url} has schema {current or 'none'}, not {head}: run `movierec db upgrade`"
    return f"the database at {url} refused: {error.orig}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    from ml.movielens.format import MalformedDataError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format=LOG_FORMAT)
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"movierec: invalid settings: {error.errors()[0]['msg']}", file=sys.stderr)
        return 2
    try:
        args.handler(args, settings)
        return 0
    # OSError: a missing or unreadable file or directory, or a port taken (ServeError), named in the message
    except (CommandError, ServiceError, MalformedDataError, OSError) as error:
        problem = str(error)
    except DBAPIError as error:
        problem = _database_problem(settings, error)
    except KeyboardInterrupt:
        print("movierec: interrupted; nothing was half-written (re-run to complete)", file=sys.stderr)
        return 130
    print(f"movierec: error: {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
