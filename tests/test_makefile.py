"""The Makefile's targets: `make demo` installs the runtime only; the tests get the dev tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _dry_run(target: str, tmp_path: Path, *variables: str) -> str:
    if shutil.which("make") is None:
        pytest.fail("make is missing")
    venv = tmp_path / "venv"  # absent: make plans the whole install
    # run from `make test`, make's own variables would make this a sub-make that prints directories
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", target, f"VENV={venv}", *variables],
        cwd=ROOT, capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return result.stdout


def test_demo_installs_the_runtime_without_the_dev_tools(tmp_path: Path) -> None:
    plan = _dry_run("demo", tmp_path)
    assert "pip install --quiet -e .\n" in plan
    assert "[dev]" not in plan
    assert plan.rstrip().endswith("movierec up")


def test_tests_get_the_dev_tools(tmp_path: Path) -> None:
    plan = _dry_run("test", tmp_path)
    assert "pip install --quiet -e '.[dev]'" in plan and "pytest" in plan


def test_demo_passes_port_and_data_dir_to_movierec_up(tmp_path: Path) -> None:
    plan = _dry_run("demo", tmp_path, "PORT=8123", "DATA_DIR=/data/ml-latest-small")
    last = plan.rstrip().splitlines()[-1]
    assert last == f"MOVIEREC_DATA_DIR=/data/ml-latest-small {tmp_path}/venv/bin/movierec up --port 8123"


def test_the_fast_tier_leaves_out_what_needs_a_server_a_browser_or_time(tmp_path: Path) -> None:
    plan = _dry_run("test-fast", tmp_path)
    assert "pip install --quiet -e '.[dev]'" in plan
    assert plan.rstrip().endswith(
        'pytest -n auto --dist loadgroup -m "not (mysql or milvus_server or browser or slow)"'
    )
    pytest_options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    declared = {m.split(":")[0] for m in pytest_options["markers"]}
    assert declared >= {"mysql", "milvus_server", "browser", "slow"}
