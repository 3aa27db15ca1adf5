"""Which columns of a table hold a point's latitude and longitude.

Found by name, as ``geofetch reverse`` and :func:`geofetch.pandas.reverse_dataframe`
both do: ``lat``/``lng``, ``lat``/``lon``, ``latitude``/``longitude`` (any case, any
pairing), or the names given.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["LAT_COLUMNS", "LNG_COLUMNS", "column_index"]

#: Header names recognised as the latitude and the longitude, in order of preference.
LAT_COLUMNS = ("lat", "latitude")
LNG_COLUMNS = ("lng", "lon", "longitude")


def column_index(header: Sequence[object], name: str | None, known: Sequence[str]) -> int | None:
    """The position in ``header`` of column ``name`` (exactly, else case-insensitively,
    surrounding spaces ignored), or with ``name`` None of the first of ``known``
    (lower case) found case-insensitively; None when there is none."""
    folded = [str(column).strip().lower() for column in header]
    if name is not None:
        if name in header:
            return list(header).index(name)
        wanted = [name.strip().lower()]
    else:
        wanted = list(known)
    for candidate in wanted:
        if candidate in folded:
            return folded.index(candidate)
    return None
