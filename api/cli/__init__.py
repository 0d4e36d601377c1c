"""The `movierec` command: migrations, data import, training, model versions, experiments, API keys
and serving."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from api.access.scopes import SCOPES
from api.cli import commands, experiments, serving
from api.errors import ServiceError
from api.ids import parse_id
from api.metrics import LOG_FORMAT
from api.settings import Settings


def _command(
    group: Any, name: str, handler: Callable[[argparse.Namespace, Settings], None], about: str, **options: Any
) -> argparse.ArgumentParser:
    """Add the subcommand `name` that runs `handler`, described in `--help` by the handler's docstring."""
    parser = group.add_parser(name, help=about, description=handler.__doc__, **options)
    parser.set_defaults(handler=handler)
    return parser


def _id(text: str) -> int:
    """Return an id option's value; one no id column holds is argparse's usage error, not the database's."""
    value = parse_id(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"not an id: {text}")
    return value


def _group(parent: Any, name: str, about: str) -> Any:
    """Add the command `name` whose subcommands are added to what it returns."""
    parser = parent.add_parser(name, help=about)
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
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Options several commands share, given to each as a parent parser.
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    version = argparse.ArgumentParser(add_help=False)
    version.add_argument("version", type=_id, help="version id")
    listen = argparse.ArgumentParser(add_help=False)
    listen.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    listen.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    workers = serving.DEFAULT_WORKERS
    about = f"API processes sharing the port and Milvus Lite (default: one per core, here {workers})"
    listen.add_argument("--workers", type=int, default=workers, help=about)

    db = _group(subcommands, "db", "database schema (Alembic migrations)")
    about = "migrate the database to the latest schema (alembic upgrade)"
    upgrade = _command(db, "upgrade", commands.cmd_db, about)
    upgrade.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    down = _command(db, "downgrade", commands.cmd_db, "migrate the database back (alembic downgrade)")
    down.add_argument("revision", help="target revision, e.g. base or -1")

    data = _group(subcommands, "data", "MovieLens data: import, synthetic sample")
    about = "import users, movies and ratings (idempotent: a re-run changes nothing)"
    imp = _command(data, "import", commands.cmd_data_import, about, parents=[quiet])
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
    sample = _command(data, "sample", commands.cmd_data_sample, about)
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
    train = _command(subcommands, "train", commands.cmd_train, about, parents=[quiet])
    for name, (kind, about) in commands.TRAIN_OPTIONS.items():
        train.add_argument(f"--{name.replace('_', '-')}", type=kind, help=about)
    train.add_argument("--no-activate", dest="activate", action="store_false", help="do not make it active")

    versions = _group(subcommands, "versions", "model versions: list, activate, keep, delete")
    _command(versions, "list", commands.cmd_versions_list, "every training run, newest first (* = active)")
    about = "build the version's Milvus collection, serve it and keep its users' lists"
    _command(versions, "activate", commands.cmd_versions_activate, about, parents=[version])
    about = "compute every user's recommendations for the active version ahead of requests"
    _command(versions, "keep", commands.cmd_versions_keep, about, parents=[quiet])
    about = "delete a version that is not active: row, collection, files"
    _command(versions, "delete", commands.cmd_versions_delete, about, parents=[version])

    trials = _group(subcommands, "experiments", "A/B tests of model versions: start, stop, promote, report")
    about = "serve a share of users from a succeeded version against the active one"
    start = _command(trials, "start", experiments.cmd_experiments_start, about)
    start.add_argument("--treatment", type=_id, required=True, metavar="VERSION", help="version id to try")
    start.add_argument(
        "--share", type=float, default=0.5, help="share of users it serves, between 0 and 1 (default 0.5)"
    )
    start.add_argument("--name", default="", help="what is tried (default: the two versions)")
    start.add_argument(
        "--days", type=float, metavar="N", help="end after N days (default: run until stopped)"
    )
    _command(trials, "stop", experiments.cmd_experiments_stop, "stop the running experiment")
    about = "activate the running experiment's treatment for every user and keep its users' lists"
    _command(trials, "promote", experiments.cmd_experiments_promote, about)
    _command(trials, "list", experiments.cmd_experiments_list, "every experiment, newest first (* = running)")
    about = "each arm's positive rate, their difference with its uncertainty, the sample-ratio check"
    report = _command(trials, "report", experiments.cmd_experiments_report, about)
    report.add_argument("--id", type=_id, help="experiment id (default: the running one, else the newest)")
    report.add_argument("--json", action="store_true", help="print one JSON object, for scripts")
    report.add_argument(
        "--window", type=int, metavar="SECONDS",
        help="how long after an impression feedback counts (default: MOVIEREC_EXPERIMENT_WINDOW_S)",
    )  # fmt: skip

    keys = _group(subcommands, "keys", "API keys for back ends: create, list, revoke")
    create = _command(keys, "create", commands.cmd_keys_create, "a new key with scopes; printed once")
    create.add_argument("--name", required=True, help="who or what holds it")
    create.add_argument(
        "--scope", action="append", required=True, choices=sorted(SCOPES),
        help="repeat for several: " + "; ".join(f"{k}: {v}" for k, v in SCOPES.items()),
    )  # fmt: skip
    _command(keys, "list", commands.cmd_keys_list, "every key, newest first")
    revoke = _command(keys, "revoke", commands.cmd_keys_revoke, "stop a key working")
    revoke.add_argument("key_id", help="the key id that `keys list` shows")

    _command(subcommands, "serve", serving.cmd_serve, "serve the GraphQL API with uvicorn", parents=[listen])
    about = "everything to a running service: migrate, import, train and index what is missing, serve"
    up = _command(subcommands, "up", serving.cmd_up, about, parents=[listen])
    up.add_argument("--source", default="auto", help="data source for a first import (default: auto)")
    up.add_argument("--reimport", action="store_true", help="import the data again")
    up.add_argument("--retrain", action="store_true", help="train and activate a new model version")
    up.add_argument("--epochs", type=int, help="epochs when training (default: the model's)")
    # What up's import and training read of the options it does not have.
    up.set_defaults(**dict.fromkeys(commands.TRAIN_OPTIONS), format="auto", quiet=False, activate=True)

    about = "print the GraphQL schema (SDL) for front ends' code generation"
    schema = _command(subcommands, "schema", commands.cmd_schema, about)
    schema.add_argument("--out", help="write it to this file (the repository keeps schema.graphql)")
    _command(subcommands, "summary", commands.cmd_summary, "print what the database holds")
    return parser


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
    except (commands.CommandError, ServiceError, MalformedDataError, OSError) as error:
        problem = str(error)
    except DBAPIError as error:
        problem = commands.database_problem(settings, error)
    except KeyboardInterrupt:
        print("movierec: interrupted; nothing was half-written (re-run to complete)", file=sys.stderr)
        return 130
    print(f"movierec: error: {problem}", file=sys.stderr)
    return 1
