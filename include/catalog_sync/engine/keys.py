"""Keys of a whole run held as 64-bit hashes, for the steps that must know "is this SKU one of the run's?" (or its
price, its lifecycle) over a catalog-sized delta while reading everything else a page at a time.

A Python ``set`` of a million SKUs costs about 100 MB (the strings and the table) and a ``dict`` of their prices
about 150 MB; :class:`KeySet` keeps a key's hash and one number in numpy arrays, 16 bytes a key. The hashes are
Python's own ``hash`` of the key, so a KeySet lives in one process (hash randomisation) and is never stored.

Two different keys can hash alike (among a million keys, one chance in about 30 million that any pair does): a key
that is not in the set may then be taken for one that is. The callers use a KeySet only where that costs nothing wrong: filtering a scan whose
rows are then looked up by their exact key, or ranking.

A KeySet also keeps the keys themselves while there are at most ``keep`` of them (:attr:`few`): a handful of SKUs
is read from a system one request each, where a catalog-sized set is one paged scan (``flows.hot._erp_pages``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Any

import numpy as np


class KeySet:
    """A set of string keys as sorted 64-bit hashes, each with an optional float value (see the module docstring).

    Built with :meth:`add`, then read with ``in``, :meth:`get` and ``len`` (it cannot give its keys back, past
    :attr:`few`); adding after a read is allowed (the
    next read sorts again). A key added twice keeps the value added last.
    """

    def __init__(self, keys: Iterable[str] = (), *, keep: int = 0) -> None:
        self._new_hashes = array("q")
        self._new_values = array("d")
        self._hashes = np.empty(0, dtype=np.int64)
        self._values = np.empty(0, dtype=np.float64)
        self._keep = keep
        self._few: list[str] | None = []
        for key in keys:
            self.add(key)

    def add(self, key: str, value: float = 0.0) -> None:
        self._new_hashes.append(hash(key))
        self._new_values.append(value)
        if self._few is not None:
            self._few.append(key)
            if len(self._few) > self._keep:
                self._few = None

    @property
    def few(self) -> list[str] | None:
        """The keys as added (duplicates kept), while at most ``keep`` were added; None past that."""
        return self._few

    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        if len(self._new_hashes):
            hashes = np.concatenate([self._hashes, np.frombuffer(self._new_hashes, dtype=np.int64)])
            values = np.concatenate([self._values, np.frombuffer(self._new_values, dtype=np.float64)])
            self._new_hashes, self._new_values = array("q"), array("d")
            order = np.argsort(hashes, kind="stable")
            hashes, values = hashes[order], values[order]
            last = np.ones(len(hashes), dtype=bool)  # of equal hashes, the one added last
            last[:-1] = hashes[1:] != hashes[:-1]
            self._hashes, self._values = hashes[last], values[last]
        return self._hashes, self._values

    def _find(self, key: Any) -> int:
        hashes, _ = self._sorted()
        h = hash(key)
        i = int(np.searchsorted(hashes, h))
        return i if i < len(hashes) and hashes[i] == h else -1

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._find(key) >= 0

    def get(self, key: str) -> float | None:
        """The value added with ``key``, None when the key is not in the set."""
        i = self._find(key)
        return None if i < 0 else float(self._sorted()[1][i])

    def __len__(self) -> int:
        return len(self._sorted()[0])
