"""The whole stack for API tests: a migrated database with synthetic data, a model trained on it with
real Paddle, its vectors in a real Milvus Lite, and the app running its lifespan."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode, Visitor, parse, visit
from sqlalchemy import Engine, event
from sqlalchemy.orm import sessionmaker
from starlette.testclient import TestClient

from api.access.keys import create_key
from api.access.scopes import SCOPES
from api.app import create_app
from api.dataimport.service import import_dataset
from api.datasets.service import record_import
from api.db import make_engine, make_session_factory
from api.settings import Settings
from api.vectors.store import VectorStore
from api.versions.activation import activate
from api.versions.service import finish_version, get_version, record_progress, start_version
from api.versions.training import run_training
from ml.config import TrainConfig
from ml.movielens.format import Dataset
from ml.movielens.layouts import load_ml1m
from ml.movielens.synthetic import write_synthetic
from tests.conftest import DatabaseFactory, upgrade

TINY = TrainConfig(
    embedding_dim=16, hidden_dim=32, output_dim=32, epochs=2, batch_size=128, learning_rate=5e-3
)


@dataclass
class Stack:
    settings: Settings
    dataset: Dataset
    version_id: int | None
    api_key: str  # every scope: what a trusted back end holds


def make_settings(url: str, root: Path, milvus_uri: str | None = None) -> Settings:
    return Settings(
        environment="test",
        admin_password="test-password-1",
        session_secret="test-session-secret-0123456789",
        token_secret="test-token-secret-0123456789-0123456789",
        rate_limit_address="",  # the tests' many requests come from one address (tests/api/test_access.py limits)
        rate_limit_user="",
        database_url=url,
        milvus_uri=milvus_uri or str(root / "milvus.db"),
        model_dir=root / "models",
        var_dir=root,
    )


@dataclass(frozen=True)
class TrainedVersion:
    """A version of TINY trained on build_stack's data, as run_training left it."""

    directory: Path  # a copy of its version directory, kept for the session
    params: dict[str, Any]
    metrics: dict[str, Any]
    progress: dict[str, Any]


# The first build_stack(train=True) of each backend in a session trains; every later one gets a copy
# of that version (its directory and its row), since every stack holds the same data. Training is the
# subject of tests that call run_training themselves.
TRAINED: dict[str, TrainedVersion] = {}


def train_or_copy(sessions: sessionmaker, settings: Settings, backend: str, root: Path) -> int:
    """Return the id of a new succeeded version in the stack's database: trained when the backend has
    none yet this session, else a copy of the one trained."""
    trained = TRAINED.get(backend)
    if trained is None:
        version_id = run_training(
            sessions=sessions,
            model_dir=settings.resolved_model_dir,
            config=TINY,
            started_by="tests",
            progress_bar=False,
        )
        with sessions() as session:
            row = get_version(session=session, version_id=version_id)
            assert row.artifact_path and row.metrics and row.progress
            kept = root / "trained-version"  # outlives any one test's tmp_path use of the stack
            shutil.copytree(row.artifact_path, kept)
            TRAINED[backend] = TrainedVersion(kept, row.params, row.metrics, row.progress)
        return version_id
    with sessions.begin() as session:
        version_id = start_version(session=session, params=trained.params, started_by="tests").id
    path = settings.resolved_model_dir / f"v{version_id}"
    shutil.copytree(trained.directory, path)
    with sessions.begin() as session:
        record_progress(session=session, version_id=version_id, progress=trained.progress)
        finish_version(
            session=session, version_id=version_id, metrics=trained.metrics, artifact_path=str(path.resolve())
        )
    return version_id


def build_stack(factory: DatabaseFactory, root: Path, *, train: bool, milvus_uri: str | None = None) -> Stack:
    """Return a migrated database with synthetic data and, with train, an active trained model
    (train_or_copy) whose vectors are in Milvus Lite (a file under root) or the Milvus at milvus_uri."""
    url = factory.new_url()
    upgrade(url)
    dataset = load_ml1m(
        write_synthetic(root / "data", users=120, movies=300, ratings_per_user=(20, 60), seed=7)
    )
    settings = make_settings(url, root, milvus_uri)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        counts = import_dataset(session=session, dataset=dataset)
        record_import(session=session, description="synthetic sample", layout="ml-1m", synthetic=True,
                      users=counts.users, movies=counts.movies, ratings=counts.ratings)  # fmt: skip
        _, api_key = create_key(session=session, name="tests", scopes=list(SCOPES))
    version_id = None
    if train:
        version_id = train_or_copy(sessions, settings, factory.backend, root)
        store = VectorStore(settings.resolved_milvus_uri)
        activate(sessions=sessions, store=store, version_id=version_id)
        store.close()
    engine.dispose()
    return Stack(settings, dataset, version_id, api_key)


@pytest.fixture(scope="session")
def stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """Return settings of a database and Milvus Lite file holding data and an active trained model."""
    return build_stack(database_factory, tmp_path_factory.mktemp("stack"), train=True)


@pytest.fixture(scope="session")
def hostile_stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """Return a stack of its own, with an active trained model, for the fuzz tests: their generated
    mutations add users, movies and ratings that the other tests' stack must not see."""
    return build_stack(database_factory, tmp_path_factory.mktemp("hostile"), train=True)


README = Path(__file__).resolve().parents[2] / "README.md"


def documented_error_codes() -> set[str]:
    """Return the error codes of README.md's table under "Error codes": what a client may see in
    `extensions.code`."""
    section = re.split(r"\n#+ Error codes\n", README.read_text(), maxsplit=1)[1].split("\n#", 1)[0]
    codes = set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.MULTILINE))
    assert codes, "README.md has no table of error codes"
    return codes


@pytest.fixture(scope="session")
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings)) as client:
        yield client


class GraphQL:
    """Sends GraphQL requests with a credential (an API key of every scope, or a user token), or
    none (anonymous)."""

    def __init__(self, client: TestClient, credential: str | None) -> None:
        self.client = client
        self.headers = {"authorization": f"Bearer {credential}"} if credential else {}

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        """Return the response body of a GraphQL request; the HTTP status must be 200."""
        response = self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def data(self, query: str, **variables: Any) -> dict[str, Any]:
        """Return the data of a request that must succeed."""
        body = self(query, **variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def error_code(self, query: str, **variables: Any) -> str:
        """Return the code of the single error a request must fail with."""
        body = self(query, **variables)
        assert len(body.get("errors", [])) == 1, body
        error = body["errors"][0]
        assert "Traceback" not in error["message"]
        code: str = error["extensions"]["code"]
        return code


@pytest.fixture(scope="session")
def gql(client: TestClient, stack: Stack) -> GraphQL:
    return GraphQL(client, stack.api_key)


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0
        self.texts: list[str] = []

    def __call__(self, _connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.count += 1
        self.texts.append(statement)

    def naming(self, table: str) -> list[str]:
        """Return the statements so far that name a table."""
        return [s for s in self.texts if re.search(rf"\b{table}\b", s)]


@pytest.fixture
def statements() -> Iterator[StatementCounter]:
    """Count the SQL statements every engine executes during the test."""
    counter = StatementCounter()
    event.listen(Engine, "before_cursor_execute", counter)
    yield counter
    event.remove(Engine, "before_cursor_execute", counter)


class SelectionReads:
    """Counts the selections reached each time any code reads a selection set of any document (the
    nodes a validation rule or the executor visits), and stops that code once they pass `stop`."""

    def __init__(self) -> None:
        self.count = 0
        self.stop = 10**9

    def __get__(self, node: SelectionSetNode | None, owner: type | None = None) -> tuple[Any, ...]:
        if node is None:
            return ()  # the class's default, as dataclasses read it
        selections: tuple[Any, ...] = node.__dict__["selections"]
        self.count += len(selections)
        if self.count > self.stop:
            raise RuntimeError(f"more than {self.stop} selections visited")
        return selections

    def __set__(self, node: SelectionSetNode, selections: tuple[Any, ...]) -> None:
        node.__dict__["selections"] = selections

    def start(self, stop: int) -> None:
        """Count from zero, stopping readers past `stop` selections."""
        self.count, self.stop = 0, stop


@pytest.fixture
def selection_reads(monkeypatch: pytest.MonkeyPatch) -> SelectionReads:
    """Count the selections that every reader of a selection set reaches during the test."""
    reads = SelectionReads()
    monkeypatch.setattr(SelectionSetNode, "selections", reads)
    return reads


def selection_count(document: str) -> int:
    """Return how many selections (fields, fragment spreads, inline fragments) a document holds."""
    count = 0

    class Counter(Visitor):
        def enter(self, node: object, *_: object) -> None:
            nonlocal count
            count += isinstance(node, (FieldNode, FragmentSpreadNode, InlineFragmentNode))

    visit(parse(document), Counter())
    return count


def fan_out(levels: int, root: str = "{ ...F0 }", on: str = "Query", leaf: str = "__typename") -> str:
    """Return a document whose fragments each spread the next one twice: 2^levels leaves expanded."""
    fragments = (f"fragment F{i} on {on} {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    return f"{root} {' '.join(fragments)} fragment F{levels} on {on} {{ {leaf} }}"
