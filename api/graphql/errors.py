"""Every error leaves with a safe message and an `extensions.code`; nothing else reaches a client."""

from __future__ import annotations

import logging
import re

from graphql import GraphQLError
from strawberry.http import GraphQLHTTPResponse
from strawberry.http import process_result as strawberry_process_result
from strawberry.types import ExecutionResult

from api.db import DATABASE_DOWN, DATABASE_ERRORS
from api.errors import ServiceError
from api.vectors.store import VectorStoreError

log = logging.getLogger("api.graphql")

_TOO_EXPENSIVE = re.compile(
    r"exceeds maximum operation depth|aliases found|more than \d+ tokens|the query costs"
)


def code_and_message(error: GraphQLError) -> tuple[str, str]:
    original = error.original_error
    if isinstance(original, ServiceError):
        return original.code, str(original)
    if isinstance(original, DATABASE_ERRORS):
        return "UNAVAILABLE", DATABASE_DOWN
    if isinstance(original, VectorStoreError):
        return "UNAVAILABLE", "the vector search is unavailable; try again shortly"
    if original is None or isinstance(original, GraphQLError):
        # Raised by GraphQL itself. Without a path, before execution: syntax, the cost limits, and the
        # operation checked against the schema, its variables' values included (a variable of the wrong
        # type is as much the operation's fault as an unknown field: one code says "fix the operation").
        if error.path is None:
            if _TOO_EXPENSIVE.search(error.message):
                return "QUERY_TOO_EXPENSIVE", error.message
            if error.message.startswith("Syntax Error"):
                return "GRAPHQL_PARSE_FAILED", error.message
            return "GRAPHQL_VALIDATION_FAILED", error.message
        # With a path, while executing: an argument's value refused (a null given by a variable where
        # the argument cannot be null), else an answer the schema does not allow: the service's fault.
        if error.message.startswith("Argument"):
            return "BAD_USER_INPUT", error.message
    return "INTERNAL_SERVER_ERROR", "internal server error"


def with_code(error: GraphQLError) -> GraphQLError:
    """Return the error as a client may see it: a safe message and an `extensions.code`."""
    code, message = code_and_message(error)
    if code == "INTERNAL_SERVER_ERROR":
        log.error("unexpected error in %s", error.path, exc_info=error.original_error)
    return GraphQLError(
        message, error.nodes, error.source, error.positions, error.path, extensions={"code": code}
    )


def process_result(result: ExecutionResult) -> GraphQLHTTPResponse:
    """Return the HTTP body of a result, every error rewritten by with_code (parse errors included)."""
    if result.errors:
        result.errors = [with_code(e) for e in result.errors]
    return strawberry_process_result(result)
