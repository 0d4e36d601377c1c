"""Display titles: MovieLens stores "League of Their Own, A (1992)"; people read "A League of Their Own
(1992)". The main title and each alternative title in parentheses get their trailing article put back in
front; years and everything else stay as stored."""

from __future__ import annotations

import re

# The articles MovieLens moves to the end, in the languages of its titles.
ARTICLES = frozenset(
    {
        *("The", "A", "An"),  # English
        *("Le", "La", "Les", "L'", "Un", "Une"),  # French
        *("Il", "Lo", "I", "Gli", "Uno", "Una"),  # Italian (La, L', Un as in French)
        *("El", "Los", "Las"),  # Spanish
        *("O", "Os", "As", "Um", "Uma"),  # Portuguese (A as in English)
        *("Der", "Die", "Das", "Den", "Dem", "Ein", "Eine"),  # German
        *("De", "Het", "Een"),  # Dutch
        "Det",  # Danish, Norwegian, Swedish (Den as in German)
    }
)
_TRAILING = re.compile(r"(?P<body>\S.*?), (?P<article>\S+)(?P<space>\s*)", re.DOTALL)
_YEAR = re.compile(r"\d{4}(?:[-–]\d{0,4})?")  # 1995, 1975-1979, 2007-
_AKA = "a.k.a. "


def display_title(title: str) -> str:
    """Return the title with each trailing article ("…, The", "…, L'") put in front; a title without
    one is returned unchanged."""
    stored = title.rstrip()  # a few MovieLens titles end with a space
    main, groups = _split(stored)
    parts = [_front(main)]
    for before, inner in groups:
        if _YEAR.fullmatch(inner.strip()):
            parts.append(f"{before}({inner})")
        elif inner.startswith(_AKA):
            parts.append(f"{before}({_AKA}{_front(inner[len(_AKA) :])})")
        else:
            parts.append(f"{before}({_front(inner)})")
    return "".join(parts) + title[len(stored) :]


def _split(title: str) -> tuple[str, list[tuple[str, str]]]:
    """Return the main title and its trailing parenthesised groups, each as (the whitespace before it,
    its inside), in order: "Hate (Haine, La) (1995)" -> ("Hate", [(" ", "Haine, La"), (" ", "1995")])."""
    groups: list[tuple[str, str]] = []
    rest = title
    while rest.endswith(")"):
        opening = _opening(rest)
        if opening is None:
            break
        head = rest[:opening]
        if not head.strip():  # the whole title is in parentheses: it is the main title
            break
        body = head.rstrip()
        groups.append((head[len(body) :], rest[opening + 1 : -1]))
        rest = body
    groups.reverse()
    return rest, groups


def _opening(text: str) -> int | None:
    """Return the index of the parenthesis opening the group that closes text, or None if unbalanced."""
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            depth -= 1
            if depth == 0:
                return i
    return None


def _front(text: str) -> str:
    """Return text with its trailing article in front: "Mère, La" -> "La Mère", "Enfer, L'" -> "L'Enfer"."""
    match = _TRAILING.fullmatch(text)
    if match is None or match["article"] not in ARTICLES:
        return text
    joiner = "" if match["article"].endswith("'") else " "
    return f"{match['article']}{joiner}{match['body']}{match['space']}"
