"""The retrain form: the hyperparameters an operator may change, with TrainConfig's defaults."""

from __future__ import annotations

from typing import Any, NamedTuple

from starlette.datastructures import FormData

from api.errors import BadUserInput
from ml.config import TrainConfig


class Field(NamedTuple):
    name: str
    label: str
    kind: type  # int or float
    minimum: float
    maximum: float


FIELDS = (
    Field("epochs", "Epochs", int, 1, 100),
    Field("learning_rate", "Learning rate", float, 1e-6, 1.0),
    Field("embedding_dim", "Embedding size", int, 4, 512),
    Field("hidden_dim", "Hidden size", int, 4, 1024),
    Field("output_dim", "Vector size (Milvus dim)", int, 4, 1024),
    Field("batch_size", "Batch size", int, 2, 8192),
    Field("patience", "Early-stopping patience", int, 1, 100),
    Field("seed", "Seed", int, 0, 2**31 - 1),
)


def parse(form: FormData) -> TrainConfig:
    """Return the config the form describes (unlisted hyperparameters keep their defaults); BadUserInput
    names a field the operator must correct."""
    values: dict[str, Any] = {}
    for field in FIELDS:
        raw = form.get(field.name)
        if not isinstance(raw, str) or not raw.strip():
            continue
        try:
            value = field.kind(raw.strip())
        except ValueError:
            raise BadUserInput(f"{field.label}: {raw!r} is not a {field.kind.__name__}") from None
        if not field.minimum <= value <= field.maximum:
            raise BadUserInput(f"{field.label} must be between {field.minimum:g} and {field.maximum:g}")
        values[field.name] = value
    try:
        return TrainConfig.from_dict(values)
    except (TypeError, ValueError) as error:
        raise BadUserInput(str(error)) from None
