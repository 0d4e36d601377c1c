"""`movierec serve` and `movierec up`, which brings up everything serving needs first."""

from __future__ import annotations

import argparse
import os
import secrets

from sqlalchemy import func, select

from api.access.scopes import SCOPES
from api.cli import commands
from api.metrics import log_config
from api.settings import Settings

# One API process per core, up to 4: each holds its own model in memory.
DEFAULT_WORKERS = min(os.cpu_count() or 1, 4)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    from api.server import serve

    if args.workers < 1:
        raise commands.CommandError("--workers must be at least 1")
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
    from alembic import command

    from api.ratings.models import Rating
    from api.versions.service import active_version

    settings.var_dir.mkdir(parents=True, exist_ok=True)
    config = commands.alembic_config(settings)
    config.attributes["configure_logger"] = False  # keep the command's logging as main set it
    command.upgrade(config, "head")
    with commands.batch_sessions(settings)() as session:
        ratings = session.execute(select(func.count()).select_from(Rating)).scalar_one()
        active = active_version(session=session)  # an import does not change it
    if ratings == 0 or args.reimport:
        commands.cmd_data_import(args, settings)
    else:
        print(f"data: {ratings} ratings already imported (--reimport to import again)")
        if note := commands.data_dir_note(settings):
            print(note)
    if active is None or args.retrain:
        args.epochs = args.epochs if args.retrain else None  # up's --epochs counts with --retrain
        commands.cmd_train(args, settings)
    else:
        print(f"model: version {active.id} is active (--retrain to train a new one)")
        # Rebuilds its collection and kept lists only if they are missing.
        commands.activate_and_keep(settings, active.id, only_missing=True)
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


def demo_key(settings: Settings) -> str:
    """Return the development demo's API key (every scope), kept in var/demo-api-key; a new one
    when the file is missing or its key was revoked."""
    from api.access.directory import LIVE
    from api.access.keys import create_key, split_key
    from api.access.models import ApiKey

    path = settings.demo_key_file
    key = path.read_text(encoding="utf-8").strip() if path.exists() else ""
    parts = split_key(key)
    with commands.batch_sessions(settings).begin() as session:
        if parts is None or session.execute(LIVE.where(ApiKey.key_id == parts[0])).first() is None:
            key = create_key(session=session, name="demo (movierec up)", scopes=list(SCOPES))[1]
            path.write_text(key + "\n", encoding="utf-8")
            path.chmod(0o600)
    return key
