"""pandas integration (the ``pandas`` extra): geocode a DataFrame column, or reverse
geocode two.

::

    from geofetch.pandas import geocode_dataframe, reverse_dataframe
    out = geocode_dataframe(df, column="address", provider="offline")
    out = reverse_dataframe(df, lat_column="lat", lng_column="lng", fields=True)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .exceptions import InputError, UsageError
from .io.coordinates import LAT_COLUMNS, LNG_COLUMNS, column_index
from .io.writers import output_names
from .models import GEOCODE_COLUMNS, REVERSE_COLUMNS, with_fields

if TYPE_CHECKING:
    import pandas as pd

    from .options import Progress
    from .providers import Provider


def geocode_dataframe(
    df: pd.DataFrame,
    column: str | Sequence[str] = "address",
    *,
    provider: str | Provider = "offline",
    key: str | None = None,
    base_url: str | None = None,
    countries: str | Iterable[str] | None = None,
    language: str | None = None,
    fields: bool = False,
    executor: str = "thread",
    workers: int | None = None,
    threads: int = 1,
    rate: float | None = None,
    retries: int = 3,
    timeout: float = 10.0,
    cache: Any = None,
    max_requests: int | None = None,
    max_throttled: int | None = 20,
    max_wait: float = 300.0,
    progress: Progress = False,
    gate: str | None = None,
    gate_name: str | None = None,
    scheduler: str | None = None,
    client: Any = None,
    chunk: int | None = None,
) -> pd.DataFrame:
    """Return a copy of ``df`` with ``lat``, ``lng``, ``formatted_address``, ``status``
    and ``error`` added, row for row, index preserved. A column the frame already
    has is never overwritten: the new one is ``geofetch_NAME`` (``geofetch_status``).
    ``fields=True`` adds the address fields (``country_code`` ... ``confidence``)
    before ``status``. ``column`` may be a list of columns (``["street", "city",
    "zip"]``): the place is their cells joined by ``", "``, blank or missing ones
    left out.

    The other keyword options are :func:`geofetch.geocode_many`'s. Identical places are
    asked once; results stream into five plain lists, so extra memory is those
    columns. Missing values (NaN, None) are ``invalid`` rows. Raises
    :class:`InputError` for a missing column, :class:`UsageError` for a bad option.
    """
    pd = _pandas("geocode_dataframe")
    from .tasks.geocode import iter_geocode

    names = [column] if isinstance(column, str) else list(column)
    if not names:
        raise UsageError("no column named: give one or more column names")
    _check_columns(df, *names)
    if len(names) == 1:
        places: Iterable[str] = ("" if pd.isna(value) else str(value) for value in df[names[0]])
    else:
        rows = zip(*(df[name] for name in names), strict=True)
        cells_of = (("" if pd.isna(v) else str(v).strip() for v in row) for row in rows)
        places = (", ".join(cell for cell in row if cell) for row in cells_of)
    results = iter_geocode(places, provider=provider, key=key, base_url=base_url,
                           countries=countries, language=language,
                           executor=executor, workers=workers, threads=threads, rate=rate,
                           retries=retries, timeout=timeout, cache=cache, max_requests=max_requests,
                           max_throttled=max_throttled, max_wait=max_wait,
                           progress=progress, gate=gate, gate_name=gate_name,
                           scheduler=scheduler, client=client, chunk=chunk)
    columns = with_fields(GEOCODE_COLUMNS) if fields else GEOCODE_COLUMNS
    return _collect(df, results, columns)


def reverse_dataframe(
    df: pd.DataFrame,
    lat_column: str | None = None,
    lng_column: str | None = None,
    *,
    provider: str | Provider = "offline",
    key: str | None = None,
    base_url: str | None = None,
    countries: str | Iterable[str] | None = None,
    language: str | None = None,
    max_distance: float | None = None,
    fields: bool = False,
    executor: str = "thread",
    workers: int | None = None,
    threads: int = 1,
    rate: float | None = None,
    retries: int = 3,
    timeout: float = 10.0,
    cache: Any = None,
    max_requests: int | None = None,
    max_throttled: int | None = 20,
    max_wait: float = 300.0,
    progress: Progress = False,
    gate: str | None = None,
    gate_name: str | None = None,
    scheduler: str | None = None,
    client: Any = None,
    chunk: int | None = None,
) -> pd.DataFrame:
    """Return a copy of ``df`` with ``formatted_address``, ``status`` and ``error``
    added for the point in ``lat_column``/``lng_column`` (WGS 84 degrees) of each
    row, index preserved; ``fields=True`` adds the address fields before ``status``.
    A column the frame already has is never overwritten (``geofetch_NAME``).

    The columns are found by name as ``geofetch reverse`` finds them: ``lat`` or
    ``latitude``, and ``lng``, ``lon`` or ``longitude``, any case (see
    :mod:`geofetch.io.coordinates`); a name given is matched exactly, else in any case.
    The other keyword options are :func:`geofetch.reverse_many`'s. Missing, non-numeric
    or out-of-range coordinates are ``invalid`` rows, not asked. Raises
    :class:`InputError` for a missing column (or one column for both),
    :class:`UsageError` for a bad option.
    """
    pd = _pandas("reverse_dataframe")
    from .tasks.reverse import iter_reverse

    lat = _coordinate_column(df, lat_column, LAT_COLUMNS, "latitude", "lat_column")
    lng = _coordinate_column(df, lng_column, LNG_COLUMNS, "longitude", "lng_column")
    if lat == lng:
        raise InputError(f"the latitude and the longitude are the same column "
                         f"({df.columns[lat]!r}) of the DataFrame")
    points = ((None if pd.isna(y) else y, None if pd.isna(x) else x)
              for y, x in zip(df.iloc[:, lat], df.iloc[:, lng], strict=True))
    results = iter_reverse(points, provider=provider, key=key, base_url=base_url,
                           countries=countries, language=language, max_distance=max_distance,
                           executor=executor, workers=workers, threads=threads, rate=rate,
                           retries=retries, timeout=timeout, cache=cache, max_requests=max_requests,
                           max_throttled=max_throttled, max_wait=max_wait,
                           progress=progress, gate=gate, gate_name=gate_name,
                           scheduler=scheduler, client=client, chunk=chunk)
    columns = with_fields(REVERSE_COLUMNS) if fields else REVERSE_COLUMNS
    return _collect(df, results, columns)


def _pandas(caller: str) -> Any:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - the extra is installed in tests
        raise UsageError(f"{caller} needs pandas: pip install 'geofetch[pandas]'") from None
    return pd


def _coordinate_column(df: pd.DataFrame, name: str | None, known: tuple[str, ...], what: str,
                       option: str) -> int:
    """The position of the ``what`` column of ``df`` (see :func:`reverse_dataframe`)."""
    found = column_index(list(df.columns), name, known)
    if found is not None:
        return found
    names = ", ".join(map(str, df.columns)) or "(none)"
    if name is not None:
        raise InputError(f"no column {name!r} in the DataFrame; columns are: {names}")
    raise InputError(f"no {what} column in the DataFrame (looked for {', '.join(known)}); "
                     f"columns are: {names}; name it with {option}=")


def _check_columns(df: pd.DataFrame, *wanted: str) -> None:
    for column in wanted:
        if column not in df.columns:
            names = ", ".join(map(str, df.columns)) or "(none)"
            raise InputError(f"no column {column!r} in the DataFrame; columns are: {names}")


def _collect(df: pd.DataFrame, results: Iterable[Any],
             columns: tuple[str, ...]) -> pd.DataFrame:
    """A copy of ``df`` with ``columns`` of each result added (streamed into lists)."""
    import pandas as pd

    collected: dict[str, list[Any]] = {name: [] for name in columns}
    for result in results:
        values = result.columns()
        for name in columns:
            collected[name].append(values[name])
    out = df.copy()
    written = output_names([str(c) for c in df.columns], columns)
    for target, field in zip(written, columns, strict=True):
        numeric = field in ("lat", "lng", "confidence")
        out[target] = pd.Series(collected[field], index=df.index,
                                dtype="float64" if numeric else "object")
    return out
