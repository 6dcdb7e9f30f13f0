"""The shared gallery in PostgreSQL with pgvector at scale: import, HNSW build, identify latency and recall
against exact search, disk, and the VACUUM after a removal, beside the SQLite gallery + usearch index
(``faces_scale``, same synthetic data and queries).

    nice .venv/bin/python -m benchmarks.faces_postgres --sizes 10000 100000 --write
    nice .venv/bin/python -m benchmarks.faces_postgres --sizes 1000000 --queries 200 --write

Each size runs in a child process with a PostgreSQL of its own (pgserver's: PostgreSQL 16 with pgvector in a
wheel, on a unix socket in a temporary folder under ``benchmarks/work``), and:
1. makes ``faces_scale.synthetic_gallery(size)`` (``size / 5`` people, face-like embeddings) and imports it
   (``bulk.import_embeddings``: one transaction, one COPY), without the index;
2. builds the HNSW index (``PostgresGallery.build_index``: one CREATE INDEX), timed apart;
3. opens the gallery as a one-off command would and times opening + the first search;
4. searches ``--queries`` new photos of enrolled people ("known") and as many strangers, one face at a time,
   through the index (``search``: 10 candidates re-ranked exactly) for each ``--ef`` (``hnsw.ef_search``),
   and exactly (the in-memory matrix) for p50/p95;
5. recall@1 against exact search (the distance found is the exact nearest one), the share of faces given
   the same person, and the disk used by the tables and the index;
6. removes one person (``remove``: the DELETE, then a VACUUM) and times a VACUUM after it.

Results: ``benchmarks/results/faces_postgres.md`` (written by hand from) ``faces_postgres.json`` (``--write``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.faces_scale import _exact_top, _index_searches, _peak_mb, _percentiles, run_children, synthetic_gallery
from benchmarks.faces_search import machine

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work" / "faces_postgres"
RESULTS = ROOT / "results"


def _queries(centres: np.ndarray, count: int):
    """The same known and stranger faces as ``faces_scale.run_size`` makes (same seed, same order)."""
    rng = np.random.default_rng(1)
    known = centres[rng.integers(0, len(centres), count)]
    known = known + rng.standard_normal(known.shape, dtype=np.float32) * 0.025
    strangers = rng.standard_normal((count, 128), dtype=np.float32) * 0.053
    strangers += rng.standard_normal(strangers.shape, dtype=np.float32) * 0.025
    return known, strangers


def _seconds(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def run_size(size: int, queries: int, exact_queries: int, efs, folder: Path) -> dict:
    """Everything for one gallery size (in a child process, with its own server). Returns a dict."""
    import pgserver  # noqa: PLC0415

    from neuralens.faces.bulk import Embeddings, import_embeddings  # noqa: PLC0415
    from neuralens.faces.index import IndexOptions  # noqa: PLC0415
    from neuralens.faces.postgres import HNSW_EF_CONSTRUCTION, HNSW_M, PostgresGallery  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(folder, cleanup_mode="stop")
    url = server.get_uri()
    out: dict = {"size": size, "hnsw": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION}}
    try:
        names, vectors, centres = synthetic_gallery(size)
        known, strangers = _queries(centres, queries)
        rows = Embeddings([str(n) for n in names], vectors)
        del names
        started = time.perf_counter()
        with PostgresGallery(url, index=IndexOptions(exact_below=size + 1)) as gallery:  # no index yet
            import_embeddings(gallery, rows, progress=False)
            out["postgres"] = gallery._conn.execute("SELECT version()").fetchone()[0]
        out["import_store_s"] = time.perf_counter() - started
        options = IndexOptions(exact_below=0)  # every search through the index, at every size
        with PostgresGallery(url, index=options) as gallery:
            started = time.perf_counter()
            gallery.build_index()
            out["index_build_s"] = time.perf_counter() - started
            sizes = gallery._conn.execute(
                "SELECT pg_total_relation_size('faces_embeddings'), pg_relation_size('faces_embeddings_hnsw'), "
                "pg_database_size(current_database())"
            ).fetchone()
            out["disk_mb"] = {"embeddings_table_total": sizes[0] / 2**20, "hnsw_index": sizes[1] / 2**20}
            out["disk_total_mb"] = sizes[2] / 2**20
        out["peak_mb_import"] = _peak_mb()

        started = time.perf_counter()
        with PostgresGallery(url, create=False, index=options) as gallery:
            gallery.search(known[:1])
            out["open_and_first_search_ms"] = (time.perf_counter() - started) * 1e3
            start = time.perf_counter()
            stored = gallery._stored()
            out["exact_load_s"] = time.perf_counter() - start
            out["exact_ms"] = _percentiles([_seconds(gallery.search_exact, q[None, :]) for q in known[:exact_queries]])
            for ef in efs:
                gallery._conn.execute(f"SET hnsw.ef_search = {int(ef)}")
                result = out[f"ef{ef}"] = {}
                found = _index_searches(gallery, known, strangers, result)  # faces_scale's loop: one face a search
                for kind, batch in (("known", known), ("strangers", strangers)):
                    truth = _exact_top(stored.matrix, stored.norms, batch, k=1)[:, 0]
                    nearest = np.sqrt(((stored.matrix[truth] - batch) ** 2).sum(1, dtype=np.float64))
                    got = np.array([d for _, d in found[kind]])
                    result[f"recall1_{kind}"] = float(np.mean(np.isclose(got, nearest, rtol=1e-5, atol=1e-6)))
                    exact_names, _ = gallery.search_exact(batch)
                    same = [a == b for (a, _), b in zip(found[kind], exact_names)]
                    result[f"same_person_{kind}"] = float(np.mean(same))
            start = time.perf_counter()
            removed = gallery.remove("person 1")
            out["remove_s"] = time.perf_counter() - start
            start = time.perf_counter()
            gallery._conn.execute("VACUUM faces_embeddings, faces_persons")
            out["vacuum_s"] = time.perf_counter() - start
            out["removed"] = removed
        out["peak_mb"] = _peak_mb()
    finally:
        server.cleanup()
    return out


def _child(args) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pg_", dir=WORK) as folder:
        result = run_size(args.child, args.queries, args.exact_queries, args.ef, Path(folder))
    print("RESULT " + json.dumps(result))


def table(results: list, efs) -> str:
    """The report's table (markdown): one row per size and ef_search."""
    lines = [
        "| enrolled | ef_search | import + index build | disk (database) | open + 1st search | "
        "p50 / p95 known | p50 / p95 strangers | recall@1 known / strangers | same person known / strangers | "
        "exact p50 / p95 | VACUUM after a removal |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for ef in efs:
            e = r[f"ef{ef}"]
            lines.append(
                f"| {r['size']:,} | {ef} | {r['import_store_s']:.1f} + {r['index_build_s']:.1f} s | "
                f"{r['disk_total_mb']:.0f} MB | {r['open_and_first_search_ms']:.0f} ms | "
                f"{e['index_known_ms']['p50']:.2f} / {e['index_known_ms']['p95']:.2f} ms | "
                f"{e['index_strangers_ms']['p50']:.2f} / {e['index_strangers_ms']['p95']:.2f} ms | "
                f"{e['recall1_known']:.3f} / {e['recall1_strangers']:.3f} | "
                f"{e['same_person_known']:.3f} / {e['same_person_strangers']:.3f} | "
                f"{r['exact_ms']['p50']:.2f} / {r['exact_ms']['p95']:.2f} ms | {r['vacuum_s']:.1f} s |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=500, help="known and as many stranger faces per size")
    parser.add_argument("--exact-queries", type=int, default=100, help="faces timed with exact search")
    parser.add_argument("--ef", type=int, nargs="+", default=[100, 512], help="hnsw.ef_search values to measure")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/faces_postgres.json")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    header = f"machine: {machine()}; numpy {np.__version__}"
    print(header, flush=True)
    results = run_children("benchmarks.faces_postgres", args)
    report = table(results, args.ef)
    print(report)
    if args.write:
        path = RESULTS / "faces_postgres.json"
        previous = json.loads(path.read_text()) if path.exists() else {"runs": []}
        previous["runs"].append({"machine": header, "load_end": os.getloadavg(), "results": results})
        path.write_text(json.dumps(previous, indent=1) + "\n")


if __name__ == "__main__":
    main()
