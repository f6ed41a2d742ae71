"""Vectorised pre-step helpers: derived columns for rules GX has no built-in expectation for.

Each helper returns a boolean Series that is ``True`` where the rule holds *or does not apply* (a null value, or a
value another check already rejects for its format), so every failure is reported by exactly one check. GX then
judges the helper column with ``ExpectColumnValuesToBeInSet([True])``: GX decides pass/fail and identifies the
rows; these functions only compute facts about each row (a check digit, a parent's axes) that need more than one
column or more than one row.

All helpers are column-at-a-time numpy/pandas; none loops over rows in Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np
import pandas as pd

_GTIN_RE = r"^(?:\d{12}|\d{13})$"


def gtin_check_digit_ok(values: pd.Series) -> pd.Series:
    """True where a UPC-A / EAN-13 carries a correct GS1 mod-10 check digit (or is null / not 12-13 digits).

    UPC-A is an EAN-13 with a leading zero, so both are scored on 13 digits: from the left, digits at even
    positions weigh 1 and at odd positions 3; the check digit brings the sum to a multiple of 10.
    """
    out = pd.Series(True, index=values.index, dtype=bool)
    text = values.astype("string")
    candidates = text.str.fullmatch(_GTIN_RE).fillna(False).to_numpy(dtype=bool)
    if not candidates.any():
        return out
    padded = text[candidates].str.zfill(13).to_numpy(dtype="U13")
    # One uint8 per digit: view the UTF-32 code points as a (n, 13) matrix, then subtract ord("0").
    digits = padded.view(np.uint32).reshape(-1, 13).astype(np.int16) - 48
    weights = np.array([1, 3] * 6, dtype=np.int16)
    expected = (10 - (digits[:, :12] * weights).sum(axis=1) % 10) % 10
    out.iloc[np.flatnonzero(candidates)] = expected == digits[:, 12]
    return out


def to_number(values: pd.Series) -> pd.Series:
    """Values coerced to float; anything unparsable becomes NaN."""
    if pd.api.types.is_bool_dtype(values):
        return pd.Series(np.nan, index=values.index)
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    return pd.to_numeric(values, errors="coerce").astype("float64")


def is_number(values: pd.Series) -> pd.Series:
    """True where the value is null or parses as a number."""
    return values.isna() | to_number(values).notna()


def is_integer(values: pd.Series) -> pd.Series:
    """True where the value is null or a whole number (``3``, ``3.0``, ``"3"``)."""
    num = to_number(values)
    return values.isna() | (num.notna() & (np.floor(num) == num))


def to_timestamp(values: pd.Series) -> pd.Series:
    """Values parsed as UTC timestamps (ISO 8601 strings, datetimes); unparsable becomes NaT.

    Naive values are taken as UTC: every connector hands over UTC, and comparing naive with aware fails.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values):
        return values.dt.tz_localize("UTC")
    return pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")


def parses_as_timestamp(values: pd.Series) -> pd.Series:
    """True where the value is null or parses as a timestamp."""
    return values.isna() | to_timestamp(values).notna()


def within_window(
    applies: pd.Series, start: pd.Series, end: pd.Series, now: datetime
) -> pd.Series:
    """True where the row does not apply, or ``start <= now <= end`` (a null bound is open on that side).

    Unparsable bounds count as outside the window: the layer-0 date checks report them, and a record whose
    window cannot be read must not be treated as valid.
    """
    ts_now = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
    s, e = to_timestamp(start), to_timestamp(end)
    start_ok = (start.isna() | (s.notna() & (s <= ts_now))).fillna(False)
    end_ok = (end.isna() | (e.notna() & (e >= ts_now))).fillna(False)
    return (~applies.fillna(False).astype(bool)) | (start_ok & end_ok)


def missing_text(values: pd.Series) -> pd.Series:
    """True where a value is null or a blank string (a required attribute that is not really filled)."""
    if pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
        return values.isna() | (values.astype("string").str.strip() == "").fillna(True).astype(bool)
    return values.isna()


def tag_pattern(tags: Iterable[str]) -> str:
    """Regex matching an opening tag of any of ``tags`` (case-insensitive, tolerant of whitespace)."""
    names = "|".join(sorted(tags))
    return rf"(?i)<\s*(?:{names})\b"
