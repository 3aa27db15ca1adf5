"""pandas integration (the ``pandas`` extra): geocode a DataFrame column.

::

    from geofetch.pandas import geocode_dataframe
    out = geocode_dataframe(df, column="address", provider="offline")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import InputError, UsageError
from .io.writers import output_names
from .models import GEOCODE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from .options import Progress
    from .providers import Provider


def geocode_dataframe(
    df: pd.DataFrame,
    column: str = "address",
    *,
    provider: str | Provider = "offline",
    key: str | None = None,
    base_url: str | None = None,
    executor: str = "thread",
    workers: int | None = None,
    rate: float | None = None,
    retries: int = 3,
    timeout: float = 10.0,
    cache: Any = None,
    max_requests: int | None = None,
    max_throttled: int | None = 20,
    max_wait: float = 300.0,
    progress: Progress = False,
) -> pd.DataFrame:
    """Return a copy of ``df`` with ``lat``, ``lng``, ``formatted_address``, ``status``
    and ``error`` added, row for row, index preserved. A column the frame already
    has is never overwritten: the new one is ``geofetch_NAME`` (``geofetch_status``).

    The keyword options are :func:`geofetch.geocode_many`'s. Identical places are
    asked once; results stream into five plain lists, so extra memory is those
    columns. Missing values (NaN, None) are ``invalid`` rows. Raises
    :class:`InputError` for a missing column, :class:`UsageError` for a bad option.
    """
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - the extra is installed in tests
        raise UsageError("geocode_dataframe needs pandas: pip install 'geofetch[pandas]'") from None
    from .tasks.geocode import iter_geocode

    if column not in df.columns:
        names = ", ".join(map(str, df.columns)) or "(none)"
        raise InputError(f"no column {column!r} in the DataFrame; columns are: {names}")
    places = ("" if pd.isna(value) else str(value) for value in df[column])
    collected: dict[str, list[Any]] = {name: [] for name in GEOCODE_COLUMNS}
    results = iter_geocode(places, provider=provider, key=key, base_url=base_url,
                           executor=executor, workers=workers, rate=rate, retries=retries,
                           timeout=timeout, cache=cache, max_requests=max_requests,
                           max_throttled=max_throttled, max_wait=max_wait,
                           progress=progress)
    for result in results:
        for name, value in result.columns().items():
            collected[name].append(value)
    out = df.copy()
    written = output_names([str(c) for c in df.columns], GEOCODE_COLUMNS)
    for target, field in zip(written, GEOCODE_COLUMNS, strict=True):
        out[target] = pd.Series(collected[field], index=df.index,
                              dtype="float64" if field in ("lat", "lng") else "object")
    return out
