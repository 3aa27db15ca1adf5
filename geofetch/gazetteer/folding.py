"""Text folding: the one spelling of a name that the index is keyed by.

``fold`` drops case, accents and punctuation (``"Wrocław"`` -> ``"wroclaw"``,
``"Val-d'Or"`` -> ``"val dor"``), so an index key never depends on how a name was
typed. Bump :data:`geofetch.gazetteer.index.INDEX_FORMAT` whenever these rules change:
stored indexes hold folded keys.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["fold"]

_DIACRITICS = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# Apostrophes vanish ("N'Djamena" is "Ndjamena"); other punctuation separates words.
_PUNCTUATION = str.maketrans(
    dict.fromkeys("'`\u00b4\u2018\u2019\u02bb\u02bc\u02be\u02bf")
    | dict.fromkeys(
        '-\u2010\u2011\u2012\u2013\u2014\u2015.,;:!?/\\()[]{}"\u00ab\u00bb\u201c\u201d'
        "\u201e\u00b7\u2022_&+*#@|~^<>=\u3001\u3002\u30fb\uff0c",
        " ",
    )
)
# Letters that carry no combining mark to strip, so NFKD leaves them alone.
_LETTERS = str.maketrans(
    {
        "ł": "l",
        "ø": "o",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "æ": "ae",
        "œ": "oe",
        "ı": "i",
        "ħ": "h",
        "ŧ": "t",
        "ŀ": "l",
    }
)


def fold(text: str) -> str:
    """Return the index key of ``text``: lower case, no accents, single spaces.

    Latin, Greek and Cyrillic accents are dropped; other scripts are kept as they
    are (``"大阪"`` stays ``"大阪"``). Apostrophes vanish, other punctuation becomes
    a space: ``" São  Tomé "`` -> ``"sao tome"``, ``"N'Djamena"`` -> ``"ndjamena"``.
    """
    if text.isascii():
        text = text.lower()
    else:
        text = unicodedata.normalize("NFKD", text.casefold())
        text = unicodedata.normalize("NFC", _DIACRITICS.sub("", text)).translate(_LETTERS)
    return " ".join(text.translate(_PUNCTUATION).split())
