"""Validation time against fragment fan-out: the full validation the served schema runs (introspection
off: our limits, then GraphQL's and Strawberry's rules) on `{ ...F0 }` whose fragments each spread the
next one twice, k levels, against a plain document of the same size (named operations of one field
each, every rule run on them) validated in turns with it. Medians of --rounds; the ratio is the
fan-out's median over the plain one's.

Also, as reference: Strawberry's stock depth and alias limiters, which walked every spread, on the
small k; and the documents at the token limit whose fields of one name OverlappingFieldsCanBeMerged
compares in pairs, under our budget and under graphql-core's default one.

    .venv/bin/python bench/validation.py

Writes bench/results/validation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from graphql import DocumentNode, parse, specified_rules, validate
from graphql.validation.rules import overlapping_fields_can_be_merged
from strawberry.extensions.max_aliases import create_validator as alias_limit
from strawberry.extensions.query_depth_limiter import create_validator as depth_limit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from api.graphql.limits import MAX_ALIASES, MAX_DEPTH
from api.graphql.operation import MAX_TOKENS, OVERLAP_BUDGET, ClosedOperationHooks, validate_document
from api.graphql.schema import build_schema

RESULTS = Path(__file__).resolve().parent / "results"
SCHEMA = build_schema(introspection=False)._schema
RULES = (*specified_rules, *ClosedOperationHooks.RULES)  # Strawberry's defaults, then the closed hooks'


def served(document: DocumentNode) -> int:
    """Validate as a served operation does, uncached; return the number of errors."""
    return len(validate_document.__wrapped__(SCHEMA, document, RULES, ClosedOperationHooks.HIDE_SUGGESTIONS))


def fan_out(levels: int) -> str:
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    return f"{{ ...F0 }} {fragments} fragment F{levels} on Query {{ __typename }}"


def plain(size: int) -> str:
    """Return a document of at least `size` bytes without fragments, within every limit."""
    operations: list[str] = []
    while sum(len(o) + 1 for o in operations) < size:
        operations.append(f"query Q{len(operations)} {{ genres }}")
    return " ".join(operations)


def median_ms(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def in_turns(works: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Return each work's median ms, the works taking turns round by round."""
    times: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(rounds):
        for name, work in works.items():
            times[name].append(median_ms(work, 1))
    return {name: round(statistics.median(t), 3) for name, t in times.items()}


def fan_out_rows(levels: list[int], rounds: int) -> list[dict[str, Any]]:
    rows = []
    for k in levels:
        text = fan_out(k)
        document, baseline = (
            parse(text, max_tokens=MAX_TOKENS),
            parse(plain(len(text)), max_tokens=MAX_TOKENS),
        )
        errors = validate_document.__wrapped__(SCHEMA, document, RULES, True)
        ms = in_turns({"fan_out": partial(served, document), "plain": partial(served, baseline)}, rounds)
        rows.append(
            {"k": k, "bytes": len(text), "fan_out_ms": ms["fan_out"], "plain_ms": ms["plain"],
             "ratio": round(ms["fan_out"] / ms["plain"], 2), "refused": errors[0].message if errors else None}
        )  # fmt: skip
        print(
            f"k={k:2} {len(text):5} B  fan-out {ms['fan_out']:7.3f} ms  plain {ms['plain']:7.3f} ms  "
            f"ratio {rows[-1]['ratio']:5.2f}  {'refused' if errors else 'valid'}"
        )
    return rows


def stock_rows(levels: list[int]) -> list[dict[str, Any]]:
    """Strawberry's depth and alias limiters alone on the fan-out, once each (they double a level)."""
    stock = [depth_limit(MAX_DEPTH, should_ignore=None), alias_limit(MAX_ALIASES)]
    rows = []
    for k in levels:
        document = parse(fan_out(k))
        ms = round(median_ms(partial(validate, SCHEMA, document, stock), 1), 1)
        rows.append({"k": k, "stock_limiters_ms": ms})
        print(f"k={k:2} Strawberry's stock depth and alias limiters: {ms:8.1f} ms")
    return rows


def overlap_rows(rounds: int) -> list[dict[str, Any]]:
    """Documents at the token limit that OverlappingFieldsCanBeMerged compares in pairs."""
    documents = {
        "222 x movie(id: 1) { id }": "{ " + "movie(id: 1) { id } " * 222 + "}",
        "117 fragments of movie(id: 1) { id }": "{ "
        + " ".join(f"...F{i}" for i in range(117))
        + " } "
        + " ".join(f"fragment F{i} on Query {{ movie(id: 1) {{ id }} }}" for i in range(117)),
    }
    rows = []
    for name, text in documents.items():
        document, baseline = (
            parse(text, max_tokens=MAX_TOKENS),
            parse(plain(len(text)), max_tokens=MAX_TOKENS),
        )
        errors = validate_document.__wrapped__(SCHEMA, document, RULES, True)
        ms = in_turns({"served": partial(served, document), "plain": partial(served, baseline)}, rounds)
        overlapping_fields_can_be_merged.MAX_COMPLEXITY_BUDGET = 500_000  # graphql-core's default
        try:
            default = in_turns({"default": partial(served, document)}, max(3, rounds // 5))["default"]
        finally:
            overlapping_fields_can_be_merged.MAX_COMPLEXITY_BUDGET = OVERLAP_BUDGET
        rows.append(
            {"document": name, "bytes": len(text), "served_ms": ms["served"], "plain_ms": ms["plain"],
             "ratio": round(ms["served"] / ms["plain"], 2), "default_budget_ms": default,
             "refused": errors[0].message if errors else None}
        )  # fmt: skip
        print(
            f"{name:38} {len(text):5} B  served {ms['served']:7.3f} ms  plain {ms['plain']:7.3f} ms  "
            f"ratio {rows[-1]['ratio']:5.2f}  {'refused' if errors else 'valid'}; "
            f"under graphql-core's default budget {default:.1f} ms"
        )
    return rows


def main(args: argparse.Namespace) -> None:
    levels = sorted({*range(5, 61, 5), 11})  # 10 is the last within MAX_COST, 11 the first over
    result = {
        "what": "median ms of one uncached validation as served (introspection off), against a plain "
        "document of the same size validated in turns",
        "rounds": args.rounds,
        "fan_out": fan_out_rows(levels, args.rounds),
        "stock_limiters": stock_rows([5, 10, 12, 14, 16]),
        "overlap": overlap_rows(args.rounds),
        "machine": {"cpus": os.cpu_count(), "load_1min_after": round(os.getloadavg()[0], 2)},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "validation.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=31)
    main(parser.parse_args())
