"""What the API does around every GraphQL operation, as one Strawberry extension.

Strawberry builds every extension's hooks anew for each operation (an instance, and a context
manager per overridden hook, found by inspecting the class), so six small extensions cost a
served request more than one that does all of their work. OperationHooks does:
- the cost limits: at most MAX_TOKENS tokens parsed, then validation with the depth, alias and cost
  limits first (api.graphql.validation);
- parse caching (Strawberry's ParserCache, inherited) and validation caching;
- metrics and the access-log line (api.metrics.record_operation).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from graphql import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import ParserCache

from api.graphql.validation import validate_document
from api.metrics import record_operation

MAX_TOKENS = 2_000


class OperationHooks(ParserCache):
    """Limits, caches (each of Strawberry's default size) and metrics of one operation (see the
    module docstring)."""

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
