"""The README's code blocks run: its GraphQL operations with their variables and its curl commands
against the served app with a trained model, its `make` lines as make's plan, its other shell lines
in a scratch var directory. A block after `<!-- readme-test: skip (why) -->` is not run."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from tests.api.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SKIP = "<!-- readme-test: skip"
MOST_SKIPPED = 3
BIN = Path(sys.executable).parent


@dataclass
class Block:
    language: str
    text: str
    line: int
    skipped: bool
    variables: dict[str, Any] | None = None  # a graphql block's, from the json block after it


def readme_blocks() -> list[Block]:
    """Return the README's fenced blocks, each json block folded into the graphql block before it."""
    text = README.read_text(encoding="utf-8")
    blocks: list[Block] = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL):
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        line = text.count("\n", 0, match.start()) + 1
        language, body = match.group(1), match.group(2)
        if (
            language == "json"
            and blocks
            and blocks[-1].language == "graphql"
            and blocks[-1].variables is None
        ):
            blocks[-1].variables = json.loads(body)
            continue
        blocks.append(Block(language, body, line, before.startswith(SKIP)))
    return blocks


BLOCKS = readme_blocks()


def _id(block: Block) -> str:
    return f"{block.language}-line-{block.line}"


def test_the_readme_skips_few_blocks_and_every_block_has_a_language() -> None:
    assert sum(b.skipped for b in BLOCKS) <= MOST_SKIPPED
    assert all(b.language in ("sh", "graphql") for b in BLOCKS), [(b.line, b.language) for b in BLOCKS]
    assert any(b.language == "graphql" for b in BLOCKS) and any("curl" in b.text for b in BLOCKS)


def _single_operation(document: str) -> None:
    from graphql import OperationDefinitionNode, parse

    operations = [d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode)]
    assert len(operations) == 1, "each example is one operation, so it pastes as one document"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.language == "graphql"], ids=_id)
def test_graphql_example_runs_with_its_variables(block: Block, client: TestClient, stack: Stack) -> None:
    _single_operation(block.text)
    assert block.variables is not None, "a json block of its variables follows each example"
    headers = {"authorization": f"Bearer {stack.api_key}"}
    with _ratings_kept(client, headers, block.variables):
        response = client.post(
            "/graphql", json={"query": block.text, "variables": block.variables}, headers=headers
        )
    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body, body
    assert all(value is not None for value in body["data"].values()), body


class _ratings_kept:
    """Put back user's rating of movie after an example that rates it: the stack is shared."""

    def __init__(self, client: TestClient, headers: dict[str, str], variables: dict[str, Any]) -> None:
        self.client, self.headers = client, headers
        self.user, self.movie = variables.get("user"), variables.get("movie")
        self.before: float | None = None

    def _post(self, query: str) -> dict[str, Any]:
        body: dict[str, Any] = self.client.post(
            "/graphql", json={"query": query}, headers=self.headers
        ).json()
        assert "errors" not in body, body
        return body

    def __enter__(self) -> None:
        if self.movie is None:
            return
        body = self._post(
            f"{{ user(id: {self.user}) {{ ratings(first: 100) {{ nodes {{ movieId rating }} }} }} }}"
        )
        nodes = body["data"]["user"]["ratings"]["nodes"]
        assert len(nodes) < 100
        self.before = next((n["rating"] for n in nodes if n["movieId"] == self.movie), None)

    def __exit__(self, *_: object) -> None:
        if self.movie is None:
            return
        if self.before is None:
            self._post(f"mutation {{ deleteRating(userId: {self.user}, movieId: {self.movie}) }}")
        else:
            self._post(
                f"mutation {{ rateMovie(userId: {self.user}, movieId: {self.movie}, rating: {self.before}) {{ rating }} }}"
            )


def _commands(text: str) -> list[str]:
    """Return a shell block's commands, continuation lines joined and comments left out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def _curl(words: list[str], variables: dict[str, str]) -> tuple[str, dict[str, str], str]:
    """Return the path, headers and body of a curl command (-s, -H, -d), its $VARIABLES expanded."""
    path, headers, body = "", {}, ""
    expand = lambda word: re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], word)  # noqa: E731
    items = iter(words[1:])
    for word in items:
        if word == "-s":
            continue
        if word == "-H":
            name, _, value = expand(next(items)).partition(":")
            headers[name.strip().lower()] = value.strip()
        elif word in ("-d", "--data"):
            body = next(items)
        else:
            assert word.startswith("http://127.0.0.1:8000/"), f"unexpected curl argument {word}"
            path = urlsplit(word).path
    return path, headers, body


@pytest.mark.parametrize("block", [b for b in BLOCKS if "curl " in b.text and not b.skipped], ids=_id)
def test_curl_example_answers(block: Block, client: TestClient, stack: Stack) -> None:
    variables: dict[str, str] = {}
    for command in _commands(block.text):
        assignment = re.fullmatch(r"(\w+)=(.*)", command)
        if assignment:
            assert assignment.group(2) == "$(cat var/demo-api-key)", "the key `make demo` keeps"
            variables[assignment.group(1)] = stack.api_key
            continue
        path, headers, body = _curl(shlex.split(command), variables)
        _single_operation(json.loads(body)["query"])
        response = client.post(path, content=body.encode(), headers=headers)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert "errors" not in answer, answer
        assert len(answer["data"]["recommendations"]) == 5


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.language == "sh" and "curl " not in b.text and not b.skipped], ids=_id
)
def test_shell_example_runs(block: Block, tmp_path: Path) -> None:
    """Run each line in a scratch var directory with the virtualenv's commands; `make` lines as a dry run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEREC_") and not k.startswith("MAKE")}
    env |= {"MOVIEREC_VAR_DIR": str(tmp_path), "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    for command in _commands(block.text):
        words = shlex.split(command, comments=True)
        if words[0] == "make":
            words = ["make", "--no-print-directory", "-n", *words[1:]]
        result = subprocess.run(words, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
        if words[0] == "make" and "demo" in words:
            assert "movierec up" in result.stdout.splitlines()[-1]
