"""Query normalisation shared by the cache and in-run deduplication."""

from __future__ import annotations

import unicodedata


def normalize_query(query: str) -> str:
    """Fold case, Unicode compatibility forms (NFKC) and whitespace runs.

    ``"  New   YORK "`` and ``"new york"`` ask the same question, so they share one
    request and one cache entry.
    """
    return " ".join(unicodedata.normalize("NFKC", query).casefold().split())
