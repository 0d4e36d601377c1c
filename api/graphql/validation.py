"""Validation in two passes, so that its work stays linear in the document: our limits first and
alone, then, for a document within them, the rules of GraphQL and Strawberry, where the one whose
work can grow as the square of the document (overlapping fields) stops at OVERLAP_BUDGET."""

from __future__ import annotations

from functools import lru_cache

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, validate
from graphql.validation.rules import overlapping_fields_can_be_merged
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from api.graphql.limits import check_limits

# Far above what real documents spend, and low enough that the worst document within MAX_TOKENS
# costs no more than validating any other of its size (docs/figures.md); graphql-core's default is 50x.
OVERLAP_BUDGET = 10_000
overlapping_fields_can_be_merged.MAX_COMPLEXITY_BUDGET = OVERLAP_BUDGET  # read when the rule starts
# Strawberry's rules that its own validation adds to every schema's.
STRAWBERRY_RULES = (MaybeNullValidationRule, OneOfInputValidationRule)
OVER_BUDGET = "the query costs too much to validate: fewer fields of one name, or fewer fragments"


@lru_cache(maxsize=128)
def validate_document(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    hide_suggestions: bool,
) -> tuple[GraphQLError, ...]:
    """Return the document's errors: the limits' alone when it goes over one, else those of `rules`
    (without "Did you mean" when `hide_suggestions`)."""
    refused = check_limits(document)
    if refused:
        return tuple(refused)
    errors = validate(schema, document, (*rules, *STRAWBERRY_RULES), hide_suggestions=hide_suggestions)
    # A bare "Validation aborted." is graphql-core spending its budget (or its nesting bound).
    return tuple(GraphQLError(OVER_BUDGET) if e.message == "Validation aborted." else e for e in errors)
