"""A delivering run's per-chunk work that needs no order: on the checking threads, not the loop.

Each valid row's body is hashed once and its key looked up in the ledger's snapshot (numpy, the
key kernel and Arrow release the GIL), so the event loop only settles, queues and sends.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.run.chunks import Chunk
from pipelines.run.settle import fresh_rows
from pipelines.state.key_status import LookedUp
from pipelines.state.ledger import Ledger
from transforms.keys import blake2b_128_hex
from transforms.validation import VALID, CheckedRows


@dataclass(frozen=True)
class PreparedRows:
    """A chunk's valid rows: where they are, their body hashes, their keys looked up."""

    rows: npt.NDArray[np.intp]  # positions of the valid rows in the chunk, ascending
    hashes: pa.Array  # hex BLAKE2b-128 of each valid row's body
    looked: LookedUp  # each valid row's key against the ledger's snapshot
    slots: npt.NDArray[np.intp]  # per chunk row: its key among the delivered keys, -1: not


def prepare_rows(ledger: Ledger, checked: CheckedRows, preloaded: Future[None]) -> PreparedRows:
    """Hash the valid rows' bodies and look their keys up, once the snapshot is loaded."""
    valid = pc.equal(checked.status, VALID)
    rows = np.flatnonzero(valid.to_numpy(zero_copy_only=False))
    # The whole body column through the kernel (a null body stays null): no copy of the bodies.
    hashes = pc.filter(blake2b_128_hex(checked.body), valid)
    keys = pc.filter(checked.key, valid)
    preloaded.result()  # the snapshot is read in another thread; wait for it here, not earlier
    looked = ledger.look_up(keys, hashes)
    slots = np.full(len(checked.status), -1, np.intp)
    slots[rows] = looked.delivered_at
    return PreparedRows(rows, hashes, looked, slots)


def rows_where(
    chunk: Chunk, checked: CheckedRows, index: npt.NDArray[np.intp], mask: pa.Array
) -> pa.Table:
    """``fresh_rows`` of the rows at ``index`` where ``mask`` (one flag per index) holds."""
    rows = np.zeros(chunk.batch.table.num_rows, np.bool_)
    rows[index[mask.to_numpy(zero_copy_only=False)]] = True
    return fresh_rows(chunk, checked, pa.array(rows))


def keys_where(checked: CheckedRows, index: npt.NDArray[np.intp], mask: pa.Array) -> list[str]:
    """The keys of the rows at ``index`` where ``mask`` holds (none: no column is copied)."""
    if not pc.any(mask).as_py():
        return []
    return pc.take(checked.key, pa.array(index[mask.to_numpy(zero_copy_only=False)])).to_pylist()
