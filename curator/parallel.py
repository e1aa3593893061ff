"""Loops over independent pieces, and who runs them.

The heavy stages of a map and of the duplicate search are a loop of `function(shared, piece)`
over pieces whose results are combined in order: placing points on a fitted map (the fitted
projection shared, chunks of vectors as pieces), searching duplicate cells (the vectors
shared, batches of cells as pieces). The domain takes a `Mapper` that runs that loop:
`serial` or `threaded` here, or jobs.ray_pool's cluster, which runs the very same function on
Ray workers. The pieces, the function and the order of results are the same whoever runs
them, so a distributed run gives the local run's result.

`function` must be a module-level function (a Ray worker imports it by name); `shared` is
sent to each worker once, the pieces one by one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Mapper = Callable[[Callable[[Any, Any], Any], Any, Iterable[Any]], Iterator[Any]]


def threads() -> int:
    """CPU threads this process may use: $CURATOR_THREADS (a Ray worker sets it to the CPUs it
    was given), else every CPU of the machine."""
    return int(os.environ.get("CURATOR_THREADS") or os.cpu_count() or 1)


def serial(function: Callable[[Any, Any], Any], shared: Any, pieces: Iterable[Any]) -> Iterator[Any]:
    for piece in pieces:
        yield function(shared, piece)


def threaded(function: Callable[[Any, Any], Any], shared: Any, pieces: Iterable[Any]) -> Iterator[Any]:
    """`serial` on threads() threads, results in order: for functions that release the GIL
    (numpy's BLAS products)."""
    with ThreadPoolExecutor(threads()) as pool:
        yield from pool.map(lambda piece: function(shared, piece), pieces)
