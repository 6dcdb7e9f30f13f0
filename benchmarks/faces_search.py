"""Identification search time against 1k, 100k and 1M enrolled faces (synthetic 128-d embeddings).

    .venv/bin/python -m benchmarks.faces_search                      # 1k, 100k, 1M; then a 100k SQLite gallery
    .venv/bin/python -m benchmarks.faces_search --sizes 1000 --sqlite 0

The search is the one the gallery runs (``neuralens.faces.api.nearest``): one matrix product per block
of rows, no loop over people. Embeddings are float32, so 1M of them take 512 MB; they are generated in
blocks straight into one preallocated array, so the peak stays near that. Times are the best of
``--repeats`` runs (the least disturbed by other work on the machine), plus the median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from neuralens.faces import api
from neuralens.faces.names import name_key

DIM = 128


def synthetic_embeddings(count: int, seed: int = 0, block: int = 1 << 17) -> np.ndarray:
    """``count`` random unit-length float32 embeddings, generated block by block (no float64 copy)."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, DIM), dtype=np.float32)
    for start in range(0, count, block):
        part = rng.standard_normal((min(block, count - start), DIM), dtype=np.float32)
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        out[start : start + len(part)] = part
    return out


def timed(function, repeats: int) -> tuple:
    """(best, median) wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def bench_matrix(size: int, batch: int, repeats: int) -> dict:
    """Search times for one query and for a batch of queries against ``size`` embeddings in memory."""
    matrix = synthetic_embeddings(size)
    norms = np.einsum("ij,ij->i", matrix, matrix)
    queries = synthetic_embeddings(batch, seed=1)
    one = timed(lambda: api.nearest(queries[:1], matrix, norms), repeats)
    many = timed(lambda: api.nearest(queries, matrix, norms), repeats)
    # Check the answer once against a direct computation (block by block, to keep memory flat), so the
    # timing is of a right search.
    index, _ = api.nearest(queries[:1], matrix, norms)
    direct = np.concatenate([np.linalg.norm(matrix[i : i + 65536] - queries[0], axis=1) for i in range(0, size, 65536)])
    assert index[0] == int(np.argmin(direct))
    return {"size": size, "megabytes": matrix.nbytes / 2**20, "one": one, "batch": many, "batch_size": batch}


def bench_sqlite(size: int) -> dict:
    """Fill a real gallery file with ``size`` embeddings, then time opening it and the first search
    (which loads every embedding into one matrix) and a second search (matrix cached)."""
    from neuralens.faces import Gallery  # noqa: PLC0415
    from neuralens.faces.models import Pipeline  # noqa: PLC0415

    vectors = synthetic_embeddings(size, seed=2)
    fingerprint = Pipeline().fingerprint()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.sqlite3"
        start = time.perf_counter()
        per_person = 10
        with Gallery(path) as gallery:  # one transaction per 1000 people, as a bulk import would do
            import json  # noqa: PLC0415

            with gallery._write() as conn:
                conn.execute("INSERT INTO settings VALUES ('pipeline', ?)", (json.dumps(fingerprint),))
            for first in range(0, size, 1000 * per_person):
                with gallery._write() as conn:
                    for p in range(first, min(size, first + 1000 * per_person), per_person):
                        name = f"person {p // per_person}"
                        person = conn.execute(
                            "INSERT INTO persons (name, key, created) VALUES (?, ?, 'bench')", (name, name_key(name))
                        ).lastrowid
                        conn.executemany(
                            "INSERT INTO embeddings (person_id, vector, image_sha256, created) "
                            "VALUES (?, ?, 'bench', 'bench')",
                            [(person, v.tobytes()) for v in vectors[p : p + per_person]],
                        )
        fill = time.perf_counter() - start
        query = synthetic_embeddings(1, seed=3)
        start = time.perf_counter()
        with Gallery(path) as gallery:
            gallery.search(query)
            first = time.perf_counter() - start
            second = timed(lambda: gallery.search(query), 5)
        size_mb = path.stat().st_size / 2**20
    return {"size": size, "fill": fill, "open_and_first": first, "cached": second, "file_mb": size_mb}


def machine() -> str:
    """CPU model and core count, from lscpu / os."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} logical CPUs (nproc {len(os.sched_getaffinity(0))}), load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    parser.add_argument("--batch", type=int, default=16, help="queries searched together (a group photo)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sqlite", type=int, default=100_000, help="size of the SQLite gallery test (0: skip)")
    args = parser.parse_args()
    print(f"machine: {machine()}; numpy {np.__version__}")
    print(f"| enrolled | matrix | 1 query: best / median | {args.batch} queries: best / median | per face in a batch |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        r = bench_matrix(size, args.batch, args.repeats)
        print(
            f"| {size:,} | {r['megabytes']:.1f} MB | {r['one'][0] * 1e3:.2f} / {r['one'][1] * 1e3:.2f} ms | "
            f"{r['batch'][0] * 1e3:.2f} / {r['batch'][1] * 1e3:.2f} ms | "
            f"{r['batch'][0] / args.batch * 1e3:.3f} ms |"
        )
    if args.sqlite:
        r = bench_sqlite(args.sqlite)
        print(
            f"\nSQLite gallery with {r['size']:,} embeddings ({r['file_mb']:.0f} MB file, filled in "
            f"{r['fill']:.1f} s): open + load + first search {r['open_and_first'] * 1e3:.0f} ms; later searches "
            f"(matrix cached) best {r['cached'][0] * 1e3:.2f} ms / median {r['cached'][1] * 1e3:.2f} ms"
        )


if __name__ == "__main__":
    main()
