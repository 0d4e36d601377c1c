"""What the API does around every GraphQL operation, as one Strawberry extension.

Strawberry builds every extension's hooks anew for each operation (an instance, and a context
manager per overridden hook, found by inspecting the class), so six small extensions cost a
served request more than one that does all of their work. OperationHooks does:
- the cost limits: at most MAX_TOKENS tokens parsed, depth, alias and cost rules (api.graphql.cost)
  added to validation;
- parse and validation caching (Strawberry's ParserCache and ValidationCache, inherited);
- metrics and the access-log line (api.metrics.record_operation).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from graphql import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.extensions.max_aliases import create_validator as alias_limit
from strawberry.extensions.query_depth_limiter import create_validator as depth_limit

from api.graphql.cost import CostLimit
from api.metrics import record_operation

MAX_DEPTH = 8
MAX_ALIASES = 30
MAX_TOKENS = 2_000
# Built once: the validation cache keys on the rule classes, and the stock limiter extensions make
# new classes per request, which would turn every validation into a miss.
LIMIT_RULES: tuple[type[ASTValidationRule], ...] = (
    depth_limit(MAX_DEPTH, should_ignore=None),
    alias_limit(MAX_ALIASES),
    CostLimit,
)


class OperationHooks(ParserCache, ValidationCache):
    """Limits, caches (each of Strawberry's default size) and metrics of one operation (see the
    module docstring)."""

    RULES = LIMIT_RULES

    def on_operation(self) -> Iterator[None]:
        execution = self.execution_context
        execution.parse_options["max_tokens"] = MAX_TOKENS
        execution.validation_rules = execution.validation_rules + self.RULES
        started = time.perf_counter()
        yield
        record_operation(execution, time.perf_counter() - started)


class ClosedOperationHooks(OperationHooks):
    """The same, refusing introspection (`__schema`, `__type`): production's default."""

    RULES = (*LIMIT_RULES, NoSchemaIntrospectionCustomRule)
