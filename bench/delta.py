"""Bench: find the few rows to send in a big export whose keys the ledger mostly holds already.

    uv run python bench/delta.py [--rows 10000000] [--known 9990000] [--chunk 500000]
    uv run python bench/delta.py --postgres      # the same against a throw-away PostgreSQL

Builds (in a child process, timed separately, reused on later runs unless --rebuild) a ledger
holding ``known`` delivered keys, then streams ``rows`` keys in chunks through
``Ledger.classify`` the way the pipeline does (hex BLAKE2b-128 strings plus body hashes) and
prints seconds and peak RSS of that find step. Keys are random 16-byte values from numpy, not
BLAKE2b of real rows: hashing 10 M rows in Python would dominate the bench and tell nothing
about the ledger. Every ``rows / (rows - known)``-th row is new; all other rows are delivered
with the same body.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.core.outcomes import SEND_STATUSES
from pipelines.core.state_location import StateLocation
from pipelines.state.ledger import Ledger

TARGET = "https://bench.invalid"
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def chunks(
    rows: int, known: int, chunk: int, seed: int
) -> Iterator[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.bool_]]]:
    """Keys, body hashes (both (n, 16) bytes) and the is-new mask of each chunk, reproducibly."""
    step = rows // max(rows - known, 1) if rows > known else rows + 1
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        rng = np.random.default_rng([seed, start])
        keys = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
        bodies = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
        is_new = (np.arange(start, start + n) % step) == 0
        if rows <= known:
            is_new[:] = False
        yield keys, bodies, is_new


def hex_column(values: npt.NDArray[np.uint8]) -> pa.Array:
    """A pyarrow string column of 32-char lowercase hex, as the pipeline's key column."""
    n = len(values)
    text = np.empty((n, 32), dtype=np.uint8)
    text[:, 0::2] = _HEX_DIGITS[values >> 4]
    text[:, 1::2] = _HEX_DIGITS[values & 15]
    offsets = pa.py_buffer(np.arange(0, 32 * n + 1, 32, dtype=np.int32).tobytes())
    return pa.StringArray.from_buffers(n, offsets, pa.py_buffer(text.tobytes()))


def build(path: Path, rows: int, known: int, chunk: int, seed: int) -> None:
    """Fill a fresh ledger with the known keys as delivered, inserted in key order."""
    for old in path.parent.glob(path.name + "*"):
        old.unlink()
    with Ledger(path, TARGET):
        pass  # creates the schema and the target row
    keys_parts, body_parts = [], []
    for keys, bodies, is_new in chunks(rows, known, chunk, seed):
        keys_parts.append(keys[~is_new])
        body_parts.append(bodies[~is_new])
    keys, bodies = np.concatenate(keys_parts), np.concatenate(body_parts)
    del keys_parts, body_parts
    halves = keys.view(">u8").reshape(-1, 2)
    order = np.lexsort((halves[:, 1], halves[:, 0]))  # B-tree appends, not random inserts
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -262144")
    run = db.execute("INSERT INTO runs (run_id) VALUES ('bench-build') RETURNING id").fetchone()[0]
    now = int(time.time())
    batch = 1_000_000
    for start in range(0, len(order), batch):
        part = order[start : start + batch]
        key_blob, body_blob = keys[part].tobytes(), bodies[part].tobytes()
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO deliveries (target_id, key, outcome, body_hash, attempts, run,"
            " remote_id, http_status, updated_at) VALUES (1, ?, 2, ?, 1, ?, ?, 201, ?)",
            (
                (
                    key_blob[16 * i : 16 * i + 16],
                    body_blob[16 * i : 16 * i + 16],
                    run,
                    f"rem-{start + i:020d}",
                    now,
                )
                for i in range(len(part))
            ),
        )
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def build_postgres(location: StateLocation, rows: int, known: int, chunk: int, seed: int) -> None:
    """Fill a fresh PostgreSQL state with the known keys as delivered (COPY, key order)."""
    import psycopg

    with Ledger(location, TARGET):
        pass  # creates the schema and the target row
    assert location.url is not None
    with psycopg.connect(location.url.get_secret_value(), autocommit=True) as conn:
        conn.execute("TRUNCATE deliveries")
        run = conn.execute("INSERT INTO runs (run_id) VALUES ('bench-build') RETURNING id")
        run_id = run.fetchone()[0]  # type: ignore[index]
        now = int(time.time())
        parts = [(k[~n], b[~n]) for k, b, n in chunks(rows, known, chunk, seed)]
        keys = np.concatenate([k for k, _ in parts])
        bodies = np.concatenate([b for _, b in parts])
        del parts
        halves = keys.view(">u8").reshape(-1, 2)
        order = np.lexsort((halves[:, 1], halves[:, 0]))
        columns = "target_id, key, outcome, body_hash, attempts, run, http_status, updated_at"
        target = conn.execute("SELECT id FROM targets").fetchone()[0]  # type: ignore[index]
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY deliveries ({columns}) FROM STDIN") as copy,
        ):
            for i in order:
                copy.write_row(
                    (target, keys[i].tobytes(), 2, bodies[i].tobytes(), 1, run_id, 201, now)
                )
        conn.execute("ANALYZE deliveries")


def find(
    path: Path | StateLocation, rows: int, known: int, chunk: int, seed: int
) -> dict[str, float | int]:
    """Stream the export through classify; time it and check the answer."""
    classify_s = 0.0
    first_s = 0.0
    found = expected = 0
    wall, cpu = time.perf_counter(), time.process_time()
    with Ledger(path, TARGET) as ledger:
        for keys, bodies, is_new in chunks(rows, known, chunk, seed):
            key_col, body_col = hex_column(keys), hex_column(bodies)
            started = time.perf_counter()
            status = ledger.classify(key_col, body_col)
            send = pc.is_in(status, value_set=pa.array(sorted(SEND_STATUSES)))
            rows_to_send = np.flatnonzero(send.to_numpy(zero_copy_only=False))
            spent = time.perf_counter() - started
            first_s = first_s or spent
            classify_s += spent
            if not np.array_equal(rows_to_send, np.flatnonzero(is_new)):
                raise SystemExit("wrong answer: the rows to send are not the new rows")
            found += len(rows_to_send)
            expected += int(is_new.sum())
    return {
        "find_wall_s": round(time.perf_counter() - wall, 2),
        "find_cpu_s": round(time.process_time() - cpu, 2),
        "classify_s": round(classify_s, 2),
        "first_chunk_s": round(first_s, 2),
        "rows_to_send": found,
        "expected": expected,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    """Build (or reuse) the ledger in a child process, then time the find step here."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--known", type=int, default=9_990_000)
    parser.add_argument("--chunk", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--path", type=Path, default=Path("bench/out/delta-ledger.sqlite"))
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--postgres", action="store_true", help="a throw-away PostgreSQL state")
    args = parser.parse_args()
    shape = {"rows": args.rows, "known": args.known, "chunk": args.chunk, "seed": args.seed}
    if args.postgres:
        postgres_bench(shape)
        return
    if args.build_only:
        build(args.path, **shape)
        return
    meta = args.path.with_suffix(".json")
    if (
        args.rebuild
        or not args.path.exists()
        or not meta.exists()
        or json.loads(meta.read_text()) != shape
    ):
        args.path.parent.mkdir(parents=True, exist_ok=True)
        meta.unlink(missing_ok=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--build-only"], check=True)
        print(
            f"build: {args.known:,} delivered keys in {time.perf_counter() - started:.1f} s "
            f"({args.path.stat().st_size / 1e6:.0f} MB)",
            flush=True,
        )
        meta.write_text(json.dumps(shape))
    else:
        print(f"build: reusing {args.path} ({args.path.stat().st_size / 1e6:.0f} MB)", flush=True)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = find(args.path, **shape)
    print(f"rss before find: {baseline:.0f} MB")
    print(json.dumps(result))



def postgres_bench(shape: dict[str, int]) -> None:
    """Build the state in a throw-away PostgreSQL cluster (tests/postgres_server.py), then find."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.postgres_server import running_postgres

    with running_postgres() as url:
        location = StateLocation.parse(url)
        started = time.perf_counter()
        build_postgres(location, **shape)
        print(
            f"build: {shape['known']:,} delivered keys in PostgreSQL in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        print(json.dumps(find(location, **shape)))


if __name__ == "__main__":
    main()
