"""Bench: the nightly delta, a big export whose keys the ledger mostly holds already.

    uv run python bench/delta.py [--rows 10000000] [--new 10000] [--limit 100000/60s] [--repeat 1]
    uv run python bench/delta.py --lookup-only [--known 9990000] [--chunk 500000]
    uv run python bench/delta.py --postgres      # the lookup against a throw-away PostgreSQL

By default, the real job end to end (issue 12, item 3): bench/transform.py's real-shaped export
of ``--rows`` rows, a SQLite state holding the real idempotency keys and body hashes of all its
deliverable rows but ``--new`` (built through the pipeline's own check in a child process, timed
separately, cached under bench/out/ and copied for each run), then ``lms-sync nightly`` in a
child process against a sandbox limited to ``--limit``. Prints the seconds from the child's start
until classification handed the last new row to the sender (report.json ``classified_at``),
rows/s over that span, the seconds to its exit, and its peak RSS. Targets: ≤ 30 s, < 1 GB.

``--lookup-only`` times just ``Ledger.classify`` in this process: a ledger of ``known`` random
16-byte keys (numpy, not BLAKE2b of rows), ``rows`` keys streamed through it in chunks (hex
strings plus body hashes, as the pipeline passes them); every ``rows / (rows - known)``-th row is
new, all others delivered with the same body.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from delta_nightly import OUT, build_state, delta_mapping, fill_ledger, timed_nightly

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
    keys_parts, body_parts = [], []
    for keys, bodies, is_new in chunks(rows, known, chunk, seed):
        keys_parts.append(keys[~is_new])
        body_parts.append(bodies[~is_new])
    fill_ledger(path, TARGET, np.concatenate(keys_parts), np.concatenate(body_parts))


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
    """The nightly job end to end (default), or only the ledger lookup (``--lookup-only``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--new", type=int, default=10_000, help="rows not yet delivered")
    parser.add_argument("--limit", default="100000/60s", help="the sandbox's and the run's limit")
    parser.add_argument("--repeat", type=int, default=1, help="timed nightly runs")
    parser.add_argument("--lookup-only", action="store_true", help="time Ledger.classify only")
    parser.add_argument("--known", type=int, default=9_990_000, help="--lookup-only: known keys")
    parser.add_argument("--chunk", type=int, default=500_000, help="--lookup-only: rows a chunk")
    parser.add_argument("--seed", type=int, default=7, help="--lookup-only: random keys' seed")
    parser.add_argument("--path", type=Path, default=None, help="the cached state file")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--postgres", action="store_true", help="--lookup-only in PostgreSQL")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy raw stacks to this file")
    args = parser.parse_args()
    if args.lookup_only or args.postgres:
        lookup_main(args)
    else:
        nightly_main(args)


def _cached(args: argparse.Namespace, default: Path, shape: dict[str, object]) -> bool:
    """Build the state in a child process (timed) unless a cached one of this shape exists."""
    path = args.path = args.path or default
    meta = path.with_suffix(".json")
    fresh = not args.rebuild and path.exists() and meta.exists()
    if fresh and json.loads(meta.read_text()).get("shape") == shape:
        print(f"build: reusing {path} ({path.stat().st_size / 1e6:.0f} MB)", flush=True)
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    meta.unlink(missing_ok=True)
    started = time.perf_counter()
    child = [sys.executable, __file__, *sys.argv[1:], "--build-only", "--path", str(path)]
    subprocess.run(child, check=True)
    print(
        f"build: state in {time.perf_counter() - started:.1f} s "
        f"({path.stat().st_size / 1e6:.0f} MB)",
        flush=True,
    )
    return False


def nightly_main(args: argparse.Namespace) -> None:
    """Build (or reuse) the real-key state, then time ``lms-sync nightly`` ``--repeat`` times."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from transform import generate

    csv_path, _ = generate(args.rows)
    mapping = delta_mapping()
    shape = {"export": csv_path.name, "new": args.new, "mapping": mapping.read_text()}
    default = OUT / f"nightly-state-{args.rows}-{args.new}.sqlite"
    if args.build_only:
        counts = build_state(csv_path, mapping, args.new, args.path)
        args.path.with_suffix(".json").write_text(json.dumps({"shape": shape, "counts": counts}))
        return
    _cached(args, default, shape)
    counts = json.loads(args.path.with_suffix(".json").read_text())["counts"]
    print(f"state: {json.dumps(counts)}", flush=True)
    landing = OUT / "nightly-landing"
    shutil.rmtree(landing, ignore_errors=True)
    landing.mkdir(parents=True)
    os.link(csv_path, landing / csv_path.name)  # the night's export, alone in its landing folder
    for _ in range(args.repeat):
        run_folder = OUT / "nightly-run"
        result = timed_nightly(args.path, landing, mapping, args.limit, run_folder, args.profile)
        print(json.dumps(result), flush=True)
        seconds = result["start_to_classified_s"]
        print(
            f"nightly: {result['rows_read']:,} rows, {result['requests']:,} sent; start → "
            f"classified {seconds} s ({result['rows_per_s_to_classified']} rows/s, target ≤ 30 s)"
            f", exit {result['start_to_exit_s']} s, peak RSS {result['peak_rss_mb']} MB "
            "(target < 1024)",
            flush=True,
        )


def lookup_main(args: argparse.Namespace) -> None:
    """Build (or reuse) a random-key ledger in a child process, then time the find step here."""
    shape = {"rows": args.rows, "known": args.known, "chunk": args.chunk, "seed": args.seed}
    if args.postgres:
        postgres_bench(shape)
        return
    if args.build_only:
        build(args.path, **shape)  # type: ignore[arg-type]
        args.path.with_suffix(".json").write_text(json.dumps({"shape": shape}))
        return
    _cached(args, Path("bench/out/delta-ledger.sqlite"), shape)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = find(args.path, **shape)  # type: ignore[arg-type]
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
