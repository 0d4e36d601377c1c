"""The README's tables say what the code has: every setting, every command and its options, every
error code; and no document names a commit or a past measurement run. Its examples run in
tests/api/test_readme_examples.py."""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from api.cli import build_parser
from api.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "ml" / "README.md"]
# Options every command has or that only change what is printed: not worth a table cell.
UNLISTED_OPTIONS = {"--help", "--quiet"}


def table(heading: str) -> list[list[str]]:
    """Return the rows (cells stripped, header and rule left out) of the first table under a heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) > 2, f"no table under {heading}"
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows[2:]]


def variable(field: str) -> str:
    """The environment variable of a setting: MOVIEREC_<FIELD>, or the alias it is read from."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"MOVIEREC_{field.upper()}"


def test_the_settings_table_lists_every_setting_and_nothing_else() -> None:
    listed = [re.fullmatch(r"`([A-Z_]+)`", row[0]) for row in table("Settings")]
    assert all(listed), [row[0] for row in table("Settings")]
    names = [m.group(1) for m in listed if m]
    assert len(names) == len(set(names))
    assert set(names) == {variable(field) for field in Settings.model_fields}


def test_the_settings_table_gives_each_default() -> None:
    fields = {variable(name): field for name, field in Settings.model_fields.items()}
    for row in table("Settings"):
        field = fields[row[0].strip("`")]
        default = field.get_default(call_default_factory=True)
        shown = row[1]
        if default in (None, "") or (hasattr(default, "get_secret_value") and not default.get_secret_value()):
            assert shown == "unset" or "var/" in shown, row  # empty: unset, or a file under the var dir
        elif isinstance(default, bool):
            assert shown == f"`{str(default).lower()}`", row
        elif isinstance(default, list):
            assert shown == "`[]`" and default == [], row
        elif isinstance(default, float) and default.is_integer():
            assert shown == f"`{int(default)}`", row
        else:
            assert shown == f"`{default}`", row


def leaf_commands(
    parser: argparse.ArgumentParser, prefix: str = "movierec"
) -> dict[str, argparse.ArgumentParser]:
    """Return every runnable command ("movierec versions list", ...) and its parser."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        return {prefix: parser}
    found: dict[str, argparse.ArgumentParser] = {}
    for name, child in subparsers[0].choices.items():
        found.update(leaf_commands(child, f"{prefix} {name}"))
    return found


def test_the_command_table_lists_every_command_with_its_options() -> None:
    commands = leaf_commands(build_parser())
    rows: dict[str, str] = {}
    for row in table("Command line"):
        cell = row[0].strip("`")
        words = []
        for word in cell.split():
            if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
                break
            words.append(word)
        rows[" ".join(words)] = cell
    assert set(rows) == set(commands)
    for name, parser in commands.items():
        options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
        missing = sorted(o for o in options - UNLISTED_OPTIONS if not re.search(rf"{o}\b", rows[name]))
        assert not missing, f"{name} lacks {missing}"


def _constant(node: ast.AST | None) -> str | None:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"[A-Z]+(_[A-Z]+)*", node.value)
    ):
        return node.value
    return None


def _status(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, int) and 400 <= node.value <= 599


def codes_in_source() -> set[str]:
    """Return every error code the service's code can send: a class's `code = "X"`, the code after
    an HTTP status in a refusal (`Refused(413, "X", ...)`), a status-to-code map, an `extensions`
    `{"code": "X"}` and the codes graphql's error mapping returns."""
    codes: set[str] = set()
    for path in [*ROOT.joinpath("api").rglob("*.py"), *ROOT.joinpath("admin").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "code" for t in node.targets
            ):
                codes.add(_constant(node.value) or "")
            elif isinstance(node, ast.Call):
                for status, code in zip(node.args, node.args[1:], strict=False):
                    if _status(status):
                        codes.add(_constant(code) or "")
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (isinstance(key, ast.Constant) and key.value == "code") or _status(key):
                        codes.add(_constant(value) or "")
                    elif _status(value):
                        codes.add(_constant(key) or "")
            elif isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and node.value.elts:
                codes.add(_constant(node.value.elts[0]) or "")
            elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "code":
                codes.update(_constant(c) or "" for c in node.comparators)
    codes.discard("")
    return codes


def test_the_error_table_lists_every_code_the_service_can_send() -> None:
    listed = [re.fullmatch(r"`([A-Z_]+)`", row[0]) for row in table("Error codes")]
    assert all(listed)
    found = codes_in_source()
    # The collector must find the codes of each kind of place they live in.
    assert {
        "NOT_FOUND",
        "RATE_LIMITED",
        "PAYLOAD_TOO_LARGE",
        "GRAPHQL_PARSE_FAILED",
        "METHOD_NOT_ALLOWED",
    } <= found
    assert {m.group(1) for m in listed if m} == found


HISTORY = re.compile(
    r"(?<![-\w])rounds?\b(?! trip)|\brun [AB]\b|\bthis (round|session|run)\b|\bsince migration\b"
    r"|\blatest run\b|\bprevious (run|session|machine|design)\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_describe_the_product_as_it_is(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not [m.group(0) for m in HISTORY.finditer(text)]
    words = sorted(set(re.findall(r"\b[0-9a-f]{7,40}\b", text)))
    candidates = [w for w in words if re.search(r"[a-f]", w) and re.search(r"[0-9]", w)]
    if not candidates:
        return
    if shutil.which("git") is None:
        pytest.fail("git is missing")
    checked = subprocess.run(
        ["git", "cat-file", "--batch-check"], cwd=ROOT, input="\n".join(candidates) + "\n",
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    commits = [line.split()[0] for line in checked.stdout.splitlines() if not line.endswith("missing")]
    assert not commits, f"{path.name} names git objects {commits}"
