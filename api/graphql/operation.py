"""What the API does around every GraphQL operation, as one Strawberry extension (Strawberry builds
each extension's hooks anew per operation, so one costs less than several): the token limit,
validation with the cost limits first, parse and validation caches, metrics and the access log."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    GraphQLSchema,
    NoSchemaIntrospectionCustomRule,
    get_operation_ast,
)
from strawberry.extensions import ParserCache

from api.graphql.errors import code_and_message
from api.graphql.validation import validate_document
from api.metrics import LATENCY, REQUESTS, access_log

MAX_TOKENS = 2_000


class OperationHooks(ParserCache):
    """Limits, caches (each of Strawberry's default size) and metrics of one operation."""

    RULES: tuple[type[ASTValidationRule], ...] = ()  # added to Strawberry's (GraphQL's specified rules)
    HIDE_SUGGESTIONS = False

    def on_operation(self) -> Iterator[None]:
        execution = self.execution_context
        execution.parse_options["max_tokens"] = MAX_TOKENS
        started = time.perf_counter()
        yield
        record_operation(execution, time.perf_counter() - started)

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        assert execution.graphql_document is not None  # validation follows a successful parse
        rules = (*execution.validation_rules, *self.RULES)
        errors = validate_document(
            execution.schema._schema, execution.graphql_document, rules, self.HIDE_SUGGESTIONS
        )
        execution.pre_execution_errors = list(errors)
        yield


class ClosedOperationHooks(OperationHooks):
    """The same, refusing introspection (`__schema`, `__type`) and suggesting no name of the schema
    for a misspelled one ("Did you mean ..."): production's default."""

    RULES = (NoSchemaIntrospectionCustomRule,)
    HIDE_SUGGESTIONS = True


def operation_label(context: Any) -> str:
    """Return the operation's root fields, by the schema's own names only (bounded cardinality):
    names a client made up, which fail validation, are "unknown"; a document that did not parse
    is "invalid"."""
    if context.graphql_document is None:
        return "invalid"
    operation = get_operation_ast(context.graphql_document, context.operation_name)
    if operation is None:
        return "unknown"
    fields = {s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode)}
    if not fields <= _root_fields(context.schema._schema):
        return "unknown"
    return "+".join(sorted(fields)[:3]) or "anonymous"


@functools.cache
def _root_fields(schema: GraphQLSchema) -> frozenset[str]:
    roots = (schema.query_type, schema.mutation_type, schema.subscription_type)
    return frozenset({"__typename", "__schema", "__type"}).union(*(r.fields for r in roots if r is not None))


def record_operation(context: Any, elapsed: float) -> None:
    """Count and time a finished operation (a Strawberry execution context) and write its access-log line."""
    label = operation_label(context)
    errors = getattr(context.result, "errors", None) or context.pre_execution_errors or []
    status = "error" if errors else "ok"
    REQUESTS.labels(label, status).inc()
    LATENCY.labels(label).observe(elapsed)
    codes = sorted({code_and_message(e)[0] for e in errors})
    name = context.operation_name
    access_log.info(json.dumps({"operation": label, "name": name and name[:100], "status": status,
                                "ms": round(elapsed * 1000, 2), "codes": codes}))  # fmt: skip
