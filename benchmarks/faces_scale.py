"""A gallery at scale: bulk import, the HNSW index, search latency and recall against exact search, disk and
memory, for 10k, 100k and 1M enrolled faces.

    nice .venv/bin/python -m benchmarks.faces_scale                         # 10k, 100k, 1M
    nice .venv/bin/python -m benchmarks.faces_scale --sizes 10000 --queries 200

Each size runs in a child process of its own (so its peak resident memory is its own) and:
1. makes face-like synthetic embeddings: ``size / 5`` people, each a random centre (people about 0.85 apart,
   like different people under dlib's encoder), photos = centre + noise (about 0.35 apart, like photos of
   one person); written to an ``.npz`` as ``faces import`` reads it;
2. imports it into a fresh gallery file (``bulk.import_file``: one transaction) and builds the index,
   timing both;
3. reopens the gallery as a one-off command would and times opening + the first search;
4. searches ``--queries`` new photos of enrolled people ("known") and as many people never enrolled
   ("strangers") one face at a time, through the index and exactly (the in-memory matrix), for p50/p95;
5. measures recall against exact search: recall@1 = the exact nearest embedding is the one the index
   search returns; recall@10 = share of the exact 10 nearest among the index's 10 candidates; and the
   share of faces given the same person as the exact search.

Results: ``benchmarks/results/faces_scale.md`` and ``.json`` (with ``--write``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.faces_search import machine
from neuralens.faces.index import VECTOR_TYPES

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work" / "faces_scale"
RESULTS = ROOT / "results"


def synthetic_gallery(size: int, seed: int = 0, photos: int = 5):
    """(names, (size, 128) float32 vectors, (people, 128) centres), made block by block."""
    rng = np.random.default_rng(seed)
    people = max(1, size // photos)
    centres = rng.standard_normal((people, 128), dtype=np.float32) * 0.053
    vectors = np.empty((size, 128), dtype=np.float32)
    for start in range(0, size, 1 << 17):
        stop = min(size, start + (1 << 17))
        owners = np.arange(start, stop) % people
        vectors[start:stop] = centres[owners] + rng.standard_normal((stop - start, 128), dtype=np.float32) * 0.025
    names = np.char.add("person ", (np.arange(size) % people).astype(str))
    return names, vectors, centres


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _percentiles(times) -> dict:
    ms = np.asarray(times) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "mean": float(ms.mean())}


def _exact_top(matrix: np.ndarray, norms: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """Row numbers of the ``k`` nearest rows for each query, exactly, in blocks (memory stays flat)."""
    best_d = np.full((len(queries), 0), np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(matrix), 1 << 17):
        block = matrix[start : start + (1 << 17)]
        d = norms[start : start + len(block)][None, :] - 2.0 * (queries @ block.T)
        part = np.argpartition(d, min(k, d.shape[1] - 1), axis=1)[:, :k]
        cand_d = np.concatenate([best_d, np.take_along_axis(d, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, part + start], axis=1)
        order = np.argsort(cand_d, axis=1)[:, :k]
        best_d, best_i = np.take_along_axis(cand_d, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i


def run_size(size: int, queries: int, exact_queries: int, folder: Path, extra_ef=(), dtype=None) -> dict:
    """Everything for one gallery size (run in a child process). Returns the numbers as a dict."""
    from neuralens.faces import Gallery  # noqa: PLC0415
    from neuralens.faces.bulk import import_file  # noqa: PLC0415
    from neuralens.faces.index import IndexOptions  # noqa: PLC0415

    # Always through the index here (crossover 0), so that both searches are measured at every size.
    options = IndexOptions(exact_below=0, **({"dtype": dtype} if dtype else {}))

    out: dict = {"size": size}
    names, vectors, centres = synthetic_gallery(size)
    rng = np.random.default_rng(1)
    known = centres[rng.integers(0, len(centres), queries)]
    known = known + rng.standard_normal(known.shape, dtype=np.float32) * 0.025
    strangers = rng.standard_normal((queries, 128), dtype=np.float32) * 0.053
    strangers += rng.standard_normal(strangers.shape, dtype=np.float32) * 0.025
    source = folder / f"faces_{size}.npz"
    np.savez(source, names=names, embeddings=vectors)
    del names
    out["npz_mb"] = source.stat().st_size / 2**20
    out["peak_mb_generated"] = _peak_mb()
    path = folder / f"gallery_{size}.sqlite3"

    started = time.perf_counter()
    with Gallery(path, index=options) as gallery:
        result = import_file(gallery, source, progress=False)
        uses_index = gallery.uses_index()
    out["import_total_s"] = time.perf_counter() - started  # reading the file, storing, indexing, saving
    out["import_store_s"], out["index_build_s"] = result.store_seconds, result.index_seconds
    out["uses_index"] = uses_index
    out["index_options"] = {k: getattr(options, k) for k in vars(options)}
    out["peak_mb_import"] = _peak_mb()
    source.unlink()
    sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.name.startswith(path.name)}
    out["disk_mb"] = {name: size_b / 2**20 for name, size_b in sizes.items()}
    out["disk_total_mb"] = sum(sizes.values()) / 2**20

    # A one-off command: open the file and search one face (the index is memory-mapped).
    started = time.perf_counter()
    with Gallery(path, create=False, index=options) as gallery:
        gallery.search(known[:1])
        out["open_and_first_search_ms"] = (time.perf_counter() - started) * 1e3
        out["peak_mb_one_off"] = _peak_mb()
        found = _index_searches(gallery, known, strangers, out)
        for ef in extra_ef:  # other candidate-list sizes on the same index (cheap: no rebuild)
            gallery.index.set_expansion_search(ef)
            out[f"ef{ef}"] = {}
            out[f"ef{ef}"]["found"] = _index_searches(gallery, known, strangers, out[f"ef{ef}"])
        gallery.index.set_expansion_search(options.expansion_search)
        # Exact search, as the gallery does it below the crossover: the matrix loaded once, then one
        # matrix product per face.
        start = time.perf_counter()
        stored = gallery._stored()
        out["exact_load_s"] = time.perf_counter() - start
        exact_times = []
        for query in known[:exact_queries]:
            start = time.perf_counter()
            gallery.search_exact(query[None, :])
            exact_times.append(time.perf_counter() - start)
        out["exact_ms"] = _percentiles(exact_times)
        out["peak_mb_exact"] = _peak_mb()
        # Recall against exact search (ids are 1..size in insertion order = matrix row + 1).
        for kind, batch in (("known", known), ("strangers", strangers)):
            truth = _exact_top(stored.matrix, stored.norms, batch) + 1
            candidates = gallery.index.candidates(batch, 10) if uses_index else truth
            exact_names, _ = gallery.search_exact(batch)
            nearest_dist = np.sqrt(np.maximum(((stored.matrix[truth[:, 0] - 1] - batch) ** 2).sum(1), 0))
            for ef in [None, *extra_ef]:
                where = out if ef is None else out[f"ef{ef}"]
                got = np.array([d for _, d in (found if ef is None else where["found"])[kind]])
                where[f"recall1_{kind}"] = float(np.mean(np.isclose(got, nearest_dist, rtol=1e-5, atol=1e-6)))
            out[f"recall10_{kind}"] = float(
                np.mean([len(set(c) & set(t)) / 10 for c, t in zip(candidates.tolist(), truth.tolist())])
            )
            out[f"same_person_{kind}"] = float(np.mean([a == b for (a, _), b in zip(found[kind], exact_names)]))
    for ef in extra_ef:
        del out[f"ef{ef}"]["found"]
    out["peak_mb"] = _peak_mb()
    return out


def _index_searches(gallery, known: np.ndarray, strangers: np.ndarray, out: dict) -> dict:
    """Search every face alone through the gallery (the index); put p50/p95 into ``out``. Returns the
    (name, distance) found for each face, by kind."""
    times = {"known": [], "strangers": []}
    found = {"known": [], "strangers": []}
    for kind, batch in (("known", known), ("strangers", strangers)):
        for query in batch:
            start = time.perf_counter()
            name, dist = gallery.search(query[None, :])
            times[kind].append(time.perf_counter() - start)
            found[kind].append((name[0], float(dist[0])))
    for kind in times:
        out[f"index_{kind}_ms"] = _percentiles(times[kind])
    return found


def _child(args) -> None:
    folder = Path(tempfile.mkdtemp(prefix="scale_", dir=WORK))
    try:
        result = run_size(args.child, args.queries, args.exact_queries, folder, args.ef, args.dtype)
    finally:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    print("RESULT " + json.dumps(result))


def table(results: list) -> str:
    """The report's tables (markdown)."""
    lines = [
        "| enrolled | import (store + index) | disk (gallery + index) | peak RSS | open + 1st search | "
        "index p50 / p95 (known) | index p50 / p95 (strangers) | exact p50 / p95 | exact matrix load |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['size']:,} | {r['import_total_s']:.1f} s ({r['import_store_s']:.1f} + {r['index_build_s']:.1f}) | "
            f"{r['disk_total_mb']:.0f} MB | {r['peak_mb']:.0f} MB | {r['open_and_first_search_ms']:.0f} ms | "
            f"{r['index_known_ms']['p50']:.2f} / {r['index_known_ms']['p95']:.2f} ms | "
            f"{r['index_strangers_ms']['p50']:.2f} / {r['index_strangers_ms']['p95']:.2f} ms | "
            f"{r['exact_ms']['p50']:.2f} / {r['exact_ms']['p95']:.2f} ms | {r['exact_load_s']:.1f} s |"
        )
    lines += [
        "",
        "| enrolled | recall@1 known / strangers | recall@10 known / strangers | same person as exact (known / strangers) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['size']:,} | {r['recall1_known']:.3f} / {r['recall1_strangers']:.3f} | "
            f"{r['recall10_known']:.3f} / {r['recall10_strangers']:.3f} | "
            f"{r['same_person_known']:.3f} / {r['same_person_strangers']:.3f} |"
        )
    return "\n".join(lines)


def run_children(module: str, args: argparse.Namespace) -> list:
    """Run ``python -m module --child SIZE`` for each of ``args.sizes`` (with its --queries, --exact-queries
    and --ef), one after the other, each in a process of its own. Returns their results (dicts with
    ``wall_s`` added), printed as they come."""
    results = []
    for size in args.sizes:
        command = [sys.executable, "-m", module, "--child", str(size)]
        command += ["--queries", str(args.queries), "--exact-queries", str(args.exact_queries)]
        command += ["--ef", *map(str, args.ef)] if args.ef else []
        command += ["--dtype", args.dtype] if getattr(args, "dtype", None) else []
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT.parent, env=os.environ)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"size {size} failed")
        result = json.loads(done.stdout.split("RESULT ", 1)[1])
        result["wall_s"] = time.perf_counter() - started
        results.append(result)
        print(json.dumps(result), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=500, help="known and as many stranger faces per size")
    parser.add_argument("--exact-queries", type=int, default=100, help="faces timed with exact search")
    parser.add_argument("--ef", type=int, nargs="*", default=[], help="also search with these candidate lists")
    parser.add_argument("--dtype", choices=VECTOR_TYPES, help="how the index stores vectors (default: the package's)")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/faces_scale.{md,json}")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.child:
        _child(args)
        return
    header = f"machine: {machine()}; numpy {np.__version__}"
    print(header, flush=True)
    results = run_children("benchmarks.faces_scale", args)
    report = table(results)
    print(report)
    if args.write:
        data = {
            "machine": header,
            "load_end": os.getloadavg(),
            "median_wall_s": statistics.median(r["wall_s"] for r in results),
            "results": results,
        }
        (RESULTS / "faces_scale.json").write_text(json.dumps(data, indent=1) + "\n")
        (RESULTS / "faces_scale_table.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
