"""What the API does around every GraphQL operation, as one Strawberry extension (its hooks are built
anew per operation, so one costs less than several): the token limit, validation with the cost limits
first, parse and validation caches, metrics and the access log."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    NoSchemaIntrospectionCustomRule,
    get_operation_ast,
    validate,
)
from graphql.validation.rules import overlapping_fields_can_be_merged
from strawberry.extensions import ParserCache
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from api.graphql.errors import code_and_message
from api.graphql.limits import check_limits
from api.metrics import LATENCY, REQUESTS, access_log

MAX_TOKENS = 2_000
# The overlapping-fields rule's work can grow as the square of the document: bounded far above what
# real documents spend, low enough that the worst within MAX_TOKENS costs as much as any other.
OVERLAP_BUDGET = 10_000
overlapping_fields_can_be_merged.MAX_COMPLEXITY_BUDGET = OVERLAP_BUDGET  # read when the rule starts
# Strawberry's rules that its own validation adds to every schema's.
STRAWBERRY_RULES = (MaybeNullValidationRule, OneOfInputValidationRule)
OVER_BUDGET = "the query costs too much to validate: fewer fields of one name, or fewer fragments"


class OperationHooks(ParserCache):
    """Limits, caches (each of Strawberry's default size) and metrics of one operation."""

    RULES: tuple[type[ASTValidationRule], ...] = ()  # added to Strawberry's (GraphQL's specified rules)
    HIDE_SUGGESTIONS = False

    def on_operation(self) -> Iterator[None]:
        """Bound the tokens parsed; count and time the operation, and write its access-log line."""
        execution = self.execution_context
        execution.parse_options["max_tokens"] = MAX_TOKENS
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        label = operation_label(execution)
        errors = getattr(execution.result, "errors", None) or execution.pre_execution_errors or []
        status = "error" if errors else "ok"
        REQUESTS.labels(label, status).inc()
        LATENCY.labels(label).observe(elapsed)
        codes = sorted({code_and_message(e)[0] for e in errors})
        name = execution.operation_name
        access_log.info(json.dumps({"operation": label, "name": name and name[:100], "status": status,
                                    "ms": round(elapsed * 1000, 2), "codes": codes}))  # fmt: skip

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        assert execution.graphql_document is not None  # validation follows a successful parse
        rules = (*execution.validation_rules, *self.RULES)
        errors = validate_document(
            execution.schema._schema, execution.graphql_document, rules, self.HIDE_SUGGESTIONS
        )
        execution.pre_execution_errors = list(errors)
        yield


@functools.lru_cache(maxsize=128)
def validate_document(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    hide_suggestions: bool,
) -> tuple[GraphQLError, ...]:
    """Return the limits' errors alone, so that no rule reads a document over them; else those of `rules`."""
    refused = check_limits(document)
    if refused:
        return tuple(refused)
    errors = validate(schema, document, (*rules, *STRAWBERRY_RULES), hide_suggestions=hide_suggestions)
    # A bare "Validation aborted." is graphql-core spending its budget (or its nesting bound).
    return tuple(GraphQLError(OVER_BUDGET) if e.message == "Validation aborted." else e for e in errors)


class ClosedOperationHooks(OperationHooks):
    """The same without introspection or "Did you mean ..." suggestions: production's default."""

    RULES = (NoSchemaIntrospectionCustomRule,)
    HIDE_SUGGESTIONS = True


def operation_label(context: Any) -> str:
    """Return the operation's root fields as a metric label: the schema's names only (bounded
    cardinality), "unknown" for made-up ones, "invalid" for a document that did not parse."""
    if context.graphql_document is None:
        return "invalid"
    operation = get_operation_ast(context.graphql_document, context.operation_name)
    if operation is None or (root := context.schema._schema.get_root_type(operation.operation)) is None:
        return "unknown"
    fields = {s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode)}
    if not fields <= {*root.fields, "__typename", "__schema", "__type"}:
        return "unknown"
    return "+".join(sorted(fields)[:3]) or "anonymous"
