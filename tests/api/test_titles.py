"""display_title: MovieLens's trailing articles back in front, in every language its titles use, in the
main title and its alternative titles; everything else as stored."""

from __future__ import annotations

import pytest

from api.movies.titles import display_title


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("League of Their Own, A (1992)", "A League of Their Own (1992)"),
        ("Usual Suspects, The (1995)", "The Usual Suspects (1995)"),
        ("Eye for an Eye, An (1996)", "An Eye for an Eye (1996)"),
        ("Misérables, Les (1995)", "Les Misérables (1995)"),
        ("Postino, Il (The Postman) (1994)", "Il Postino (The Postman) (1994)"),
        ("Boot, Das (1981)", "Das Boot (1981)"),
        ("Bewegte Mann, Der (1994)", "Der Bewegte Mann (1994)"),
        ("Mariachi, El (1992)", "El Mariachi (1992)"),
        ("Enfer, L' (1994)", "L'Enfer (1994)"),
        ("Scorta, La (1993)", "La Scorta (1993)"),
        ("Colonel Chabert, Le (1994)", "Le Colonel Chabert (1994)"),
        # the alternative title's article too, and L' joined without a space
        ("Star Maker, The (Uomo delle stelle, L') (1995)", "The Star Maker (L'Uomo delle stelle) (1995)"),
        ("Hate (Haine, La) (1995)", "Hate (La Haine) (1995)"),
        ("Convent, The (Convento, O) (1995)", "The Convent (O Convento) (1995)"),
        ("Tin Drum, The (Blechtrommel, Die) (1979)", "The Tin Drum (Die Blechtrommel) (1979)"),
        (
            "Children Are Watching us, The (Bambini ci guardano, I) (1942)",
            "The Children Are Watching us (I Bambini ci guardano) (1942)",
        ),
        (
            "Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)",
            "The Good, the Bad and the Ugly (Il Buono, il brutto, il cattivo) (1966)",
        ),
        (
            "Wonderful, Horrible Life of Leni Riefenstahl, The (Die Macht der Bilder) (1993)",
            "The Wonderful, Horrible Life of Leni Riefenstahl (Die Macht der Bilder) (1993)",
        ),
        ("Maybe, Maybe Not (Bewegte Mann, Der) (1994)", "Maybe, Maybe Not (Der Bewegte Mann) (1994)"),
        ("Vie est belle, La (Life is Rosey) (1987)", "La Vie est belle (Life is Rosey) (1987)"),
        (
            "Last of the High Kings, The (a.k.a. Summer Fling) (1996)",
            "The Last of the High Kings (a.k.a. Summer Fling) (1996)",
        ),
        ("Mother, The (a.k.a. Mère, La) (2000)", "The Mother (a.k.a. La Mère) (2000)"),
        (
            "Lord of the Rings: The Fellowship of the Ring, The (2001)",
            "The Lord of the Rings: The Fellowship of the Ring (2001)",
        ),
        ("Haunted World of Edward D. Wood Jr., The (1996)", "The Haunted World of Edward D. Wood Jr. (1996)"),
        # spacing as stored: none before the year, a space inside the parentheses, one at the end
        ("Associate, The (L'Associe)(1982)", "The Associate (L'Associe)(1982)"),
        ("White Balloon, The (Badkonake Sefid ) (1995)", "The White Balloon (Badkonake Sefid ) (1995)"),
        ("Usual Suspects, The (1995) ", "The Usual Suspects (1995) "),
        # no year, or a span of years
        ("Office, The", "The Office"),
        ("Office, The (2005-2013)", "The Office (2005-2013)"),
        ("Office, The (2005-)", "The Office (2005-)"),
        # parentheses in the main title
        ("(500) Days of Summer (2009)", "(500) Days of Summer (2009)"),
        (
            "Rocky Horror Picture Show, The (Rocky (Horror)) (1975)",
            "The Rocky Horror Picture Show (Rocky (Horror)) (1975)",
        ),
    ],
)
def test_a_trailing_article_goes_in_front(stored: str, shown: str) -> None:
    assert display_title(stored) == shown


@pytest.mark.parametrize(
    "stored",
    [
        "Toy Story (1995)",
        "Seven Samurai (The Magnificent Seven) (Shichinin no samurai) (1954)",
        "Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)",
        # a comma, but no article after it
        "Goodbye, Mr. Chips (1939)",
        "Mystery, Alaska (1999)",
        "Paris, Texas (1984)",
        "Crouching Tiger, Hidden Dragon (Wo hu cang long) (2000)",
        "Cry, the Beloved Country (1995)",
        "Me, Myself and I (2000)",
        # articles already in front, or not after a comma
        "Die Hard: With a Vengeance (1995)",
        "Les Visiteurs (1993)",
        "Sex, Lies, and Videotape, the (1989)",  # lower case: not MovieLens's moved article
        "Plan A (2010)",
        "Sequel,The (2001)",  # no space after the comma
        # odd shapes
        "",
        "(Untitled)",
        ", The",
        "Unbalanced, The (1995",
        "Unbalanced, The 1995)",
    ],
)
def test_a_title_without_a_moved_article_is_unchanged(stored: str) -> None:
    assert display_title(stored) == stored
