"""Addresses as people type them: which words of a query can name its city.

A query such as ``Hauptstrasse 5, 80331 Muenchen`` names a city among a street, a
house number and a postcode. :func:`parse_query` cuts it into *segments*: runs of
words between commas (or ``;``, ``|``, a line break) and numbers. Numbers
(any token with a digit, the letters of a Dutch ``1012 LG``) never name a city;
a segment holding a street type word (``Strasse``, ``rue``, ``St``, ``via``, ...)
is a *street*, which names a city only when nothing else does (``10 Rue de Paris,
59000 Lille`` is in Lille).

A run of numbers next to a street segment is a house number (``Baker Street 221B``,
``12 Rue ...``); any other run with four or more digits, or in a postcode's shape
(``NW1 6XE``, ``K1A 0B1``, ``1012 LG``, ``00-624``), is the postcode. The rules are
the common address formats of Europe, North America, Japan (romaji) and Australia
(Universal Postal Union, "Postal addressing systems" per country); they only decide
where a city name may be, never what it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .folding import fold

__all__ = ["ParsedQuery", "Segment", "is_street", "parse_query"]

# Street type words that may stand anywhere in a street's name ("Rue de la Paix",
# "Via Roma", "Calle Mayor", "Laan van ...", "Place Bellecour", "Fifth Avenue").
_STREET_ANYWHERE = frozenset(
    """
    rue chemin impasse allee quai cours avenue boulevard place plaza square
    via viale piazza piazzale corso vicolo largo strada
    calle avenida paseo carrer avinguda passeig rambla carretera rua travessa praca
    strasse str platz gasse damm ufer chaussee steig ring
    straat laan weg plein gracht kade singel dijk
    ul ulica plac aleje ulitsa prospekt pereulok namesti
    """.split()
)
# Street type words that follow the name ("Baker Street", "Queen St W", "Karl Johans
# gate", "Nanjing Lu"): as a segment's first word they start a city's name
# ("St Louis", "Road Town", "Way", "Ave Maria").
_STREET_AFTER = frozenset(
    """
    street st road rd ave av blvd bd lane ln drive dr way court ct pl sq terrace
    highway hwy parkway pkwy crescent close circle cir trail alley expressway
    freeway pike turnpike walk mews row gate gatan gade vej vei veien vegen
    katu utca lu jie dori
    """.split()
)
# Compound street names: a word ending so is a street ("Hauptstrasse", "Königstr",
# "Marienplatz", "Drottninggatan", "Oudegracht").
_STREET_SUFFIXES = (
    "strasse", "str", "weg", "platz", "gasse", "allee", "damm", "ufer", "steig",
    "straat", "laan", "gracht", "plein", "kade", "singel", "dijk",
    "gatan", "vagen", "vej", "gade", "veien", "vegen", "katu",
)  # fmt: skip
# What separates the parts of a query ("street, city, country").
_PARTS = re.compile(r"[,;|\n\r]+")
_DIGIT = re.compile(r"\d")
# An ordinal is a word of a street's name ("5th Ave", "42nd Street"), not a number.
_ORDINAL = re.compile(r"\d+(st|nd|rd|th)[.,]?", re.IGNORECASE)
# Postcodes whose shape tells them from a house number even when short.
_POSTCODE_SHAPES = re.compile(
    r"""
    [A-Z]{1,2}\d[A-Z\d]?\ \d[A-Z]{2}     # United Kingdom: NW1 6XE, SW1A 2AA
    | [A-Z]\d[A-Z]\ \d[A-Z]\d            # Canada: K1A 0B1
    | [A-Z]\d[\dW]\ [A-Z\d]{4}           # Ireland (Eircode): D01 F5P2
    | \d{4}\ [A-Z]{2}                    # Netherlands: 1012 LG
    | \d{3}\ \d{2}                       # Sweden, Czechia, Slovakia, Greece: 111 51
    | \d{2}-\d{3}                        # Poland: 00-624
    | \d{3}-\d{4}                        # Japan: 100-0005
    | \d{4}-\d{3}                        # Portugal: 1100-048
    | \d{5}-\d{3,4}                      # Brazil 01310-100, US ZIP+4 20500-0003
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Segment:
    """A run of folded words that may name a place: ``words``, the comma ``part``
    (0-based) it is in, whether it is a ``street``, and whether its part opens with a
    house number before it (``numbered``: "1-2-3 Honcho", a block or a street, seldom
    the city itself)."""

    words: tuple[str, ...]
    part: int
    street: bool
    numbered: bool = False

    @property
    def key(self) -> str:
        """The words as one index key: ``"frankfurt am main"``."""
        return " ".join(self.words)


@dataclass(frozen=True)
class ParsedQuery:
    """A query cut into :class:`Segment` s, with what else it holds.

    ``parts``: each comma part folded, numbers and all, but for a leading postcode or
    house number (``"75002 Paris 18 Buttes-Montmartre"`` -> ``"paris 18 buttes
    montmartre"``, the name of a place);
    ``house_number``: a number next to a street; ``postcode``: the first postcode as
    written (``"80331"``, ``"NW1 6XE"``), else ``None``.
    """

    segments: tuple[Segment, ...]
    parts: tuple[str, ...]
    house_number: bool
    postcode: str | None

    @property
    def street(self) -> bool:
        """True when a segment is a street."""
        return any(segment.street for segment in self.segments)

    @property
    def is_address(self) -> bool:
        """True when the query has a street, a house number or a postcode part."""
        return self.house_number or self.postcode is not None or self.street


def is_street(words: tuple[str, ...]) -> bool:
    """True when ``words`` (folded) read as a street's name."""
    for position, word in enumerate(words):
        if word in _STREET_ANYWHERE or (position and word in _STREET_AFTER):
            return True
        if any(len(word) > len(end) + 2 and word.endswith(end) for end in _STREET_SUFFIXES):
            return True
    return False


def parse_query(query: str) -> ParsedQuery:
    """Cut ``query`` into segments (see the module docstring).

    ``"Hauptstrasse 5, 80331 Muenchen"`` -> segments ``hauptstrasse`` (street, part 0)
    and ``muenchen`` (part 1), postcode ``"80331"``, a house number.
    """
    segments: list[Segment] = []
    house_number = False
    postcode: str | None = None
    parts = [part for part in _PARTS.split(query) if part.strip()]
    names: list[str] = []
    for part_number, part in enumerate(parts):
        # The part as a sequence of word runs and number runs, in order.
        pieces: list[tuple[bool, list[str]]] = []  # (is_number, tokens)
        for token in part.split():
            number = (bool(_DIGIT.search(token)) and not _ORDINAL.fullmatch(token)) or (
                len(token) == 2
                and token.isalpha()
                and token.isupper()
                and bool(pieces)
                and pieces[-1][0]
                and re.fullmatch(r"\d{4}", pieces[-1][1][-1]) is not None
            )
            if number:
                if pieces and pieces[-1][0]:
                    pieces[-1][1].append(token)
                else:
                    pieces.append((True, [token]))
                continue
            words = fold(token).split()
            if not words:  # a lone dash or slash: "Santa Anita - Los Ficus" is one name
                continue
            if pieces and not pieces[-1][0]:
                pieces[-1][1].extend(words)
            else:
                pieces.append((False, words))
        streets = [not is_number and is_street(tuple(tokens)) for is_number, tokens in pieces]
        for at in range(1, len(pieces)):
            # After a postcode comes the city, and a short last word is its region's
            # abbreviation ("95131 Catania CT", "20121 Milano PL"), not "Court".
            number, tokens = pieces[at - 1][1], pieces[at][1]
            if streets[at] and pieces[at - 1][0] and len(tokens) > 1 and len(tokens[-1]) <= 3:
                text = " ".join(number)
                if sum(ch.isdigit() for ch in text) >= 4 or _POSTCODE_SHAPES.fullmatch(text):
                    streets[at] = is_street(tuple(tokens[:-1]))
        kept = pieces[1:] if pieces and pieces[0][0] else pieces
        names.append(" ".join(fold(" ".join(tokens)) if is_number else " ".join(tokens)
                              for is_number, tokens in kept))
        house_number_first = False
        for at, (is_number, tokens) in enumerate(pieces):
            if not is_number:
                if tokens:
                    numbered = at == 1 and house_number_first
                    segments.append(Segment(tuple(tokens), part_number, streets[at], numbered))
                continue
            text = " ".join(tokens)
            by_street = (at > 0 and streets[at - 1]) or (at + 1 < len(pieces) and streets[at + 1])
            digits = sum(ch.isdigit() for ch in text)
            if not by_street and (digits >= 4 or _POSTCODE_SHAPES.fullmatch(text)):
                if postcode is None:
                    postcode = text.lstrip("\u3012")  # the Japanese postal mark
            else:
                house_number = True
                house_number_first = at == 0
    return ParsedQuery(tuple(segments), tuple(names), house_number, postcode)
