"""Text folding: the one spelling of a name that the index is keyed by.

``fold`` drops case, accents and punctuation (``"Wrocław"`` -> ``"wroclaw"``,
``"Val-d'Or"`` -> ``"val dor"``), so an index key never depends on how a name was
typed. ``spellings`` adds the transliterated key a name is also typed as where its
letters cannot be (``"München"`` -> ``"munchen"`` and ``"muenchen"``). Bump
:data:`geofetch.gazetteer.index.INDEX_FORMAT` whenever these rules change: stored
indexes hold folded keys.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["fold", "spellings"]

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


# German, Scandinavian and Danish letters as typed on keyboards without them (DIN 5007-2,
# the Scandinavian "aa"/"oe"); after NFKD an umlaut is the vowel plus U+0308.
_TRANSLITERATIONS = (
    ("a\u0308", "ae"),
    ("o\u0308", "oe"),
    ("u\u0308", "ue"),
    ("\u00f8", "oe"),
    ("a\u030a", "aa"),
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


def spellings(text: str) -> list[str]:
    """The keys ``text`` is found by: :func:`fold`'s, then its transliteration where
    that differs (``ä ö ü`` -> ``ae oe ue``, ``ø`` -> ``oe``, ``å`` -> ``aa``; ``ß`` is
    already ``ss``): ``"Zürich"`` -> ``["zurich", "zuerich"]``, ``"Tromsø"`` ->
    ``["tromso", "tromsoe"]``, ``"Paris"`` -> ``["paris"]``. Empty keys are left out.
    """
    key = fold(text)
    keys = [key] if key else []
    if text.isascii():
        return keys
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    if not any(letter in decomposed for letter, _ in _TRANSLITERATIONS):
        return keys
    for letter, written in _TRANSLITERATIONS:
        decomposed = decomposed.replace(letter, written)
    other = fold(unicodedata.normalize("NFC", decomposed))
    if other and other != key:
        keys.append(other)
    return keys
