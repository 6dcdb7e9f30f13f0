"""Detection + encoding throughput on the sample photos, side by side with the ``face_recognition`` library
(the same dlib models), and clustering purity on the same photos.

    .venv/bin/pip install --no-deps face_recognition==1.3.0     # the peer, for this benchmark only
    nice .venv/bin/python -m benchmarks.faces_throughput [--repeats 3] [--write]

For every photo (full size, from ``shared/data/faces``; the test copies when it is missing), each way of
computing the faces' embeddings runs ``--repeats`` times and the best time counts (the least disturbed by
other work); file decoding is included for both:
- ``face_recognition``: ``load_image_file``, ``face_locations`` (HOG, upsample 1, on the full image),
  ``face_encodings`` (5-point model, no jitter);
- ``neuralens``: ``faces.encode`` (HOG on a copy shrunk to 1024 px, faces encoded from the full image);
- dlib's batch call: the aligned chips of every face of the folder encoded one by one, and all at once
  (``compute_face_descriptor`` with a list), to see whether batching pays on this CPU.
Accuracy: the faces each finds, matched by box centre, the distance between the two embeddings of a face,
and the same/different verdicts at 0.6 on every pair of single-face photos (the person is in the file name).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.faces_search import machine

ROOT = Path(__file__).resolve().parent
SHARED = ROOT.parent.parent / "shared" / "data" / "faces"
TESTS = ROOT.parent / "tests" / "data" / "faces"
RESULTS = ROOT / "results"
# Who is where in the group photos (face number left to right); the others show one person, named by file.
GROUPS = {"two_people.jpg": ["obama", "biden"], "obama_and_biden.jpg": ["biden", "obama", "other"]}


def _person(photo: Path, index: int) -> str:
    if photo.name in GROUPS:
        return GROUPS[photo.name][index - 1]
    return "biden" if photo.name.startswith("biden") else "obama"  # 32bit.png is Obama too


def _clear_memo() -> None:
    from neuralens.faces import api  # noqa: PLC0415

    api._DETECTIONS.items.clear()
    api._EMBEDDINGS.items.clear()


def _best(function, repeats: int):
    best, value = float("inf"), None
    for _ in range(repeats):
        _clear_memo()
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def peer(photo: Path):
    """face_recognition's way: [(centre, embedding)]."""
    import face_recognition  # noqa: PLC0415

    image = face_recognition.load_image_file(str(photo))
    boxes = face_recognition.face_locations(image)
    codes = face_recognition.face_encodings(image, boxes)
    return [(((left + right) / 2, (top + bottom) / 2), code) for (top, right, bottom, left), code in zip(boxes, codes)]


def ours(photo: Path):
    """neuralens' way: [(centre, embedding)]."""
    from neuralens.faces import api  # noqa: PLC0415

    return [(((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2), f.embedding) for f in api.encode(photo)]


def _chip_batches(photos, repeats: int):
    """(one by one, batched) best seconds to encode the aligned chips of every face of ``photos``."""
    import dlib  # noqa: PLC0415

    from neuralens.faces import api, models  # noqa: PLC0415

    chips = []
    for photo in photos:
        array = api.to_array(photo)
        for box, _ in api.detect(array):
            shape = api._shape(array, box)
            chips.append(dlib.get_face_chip(array, shape, size=models.CHIP_SIZE, padding=models.CHIP_PADDING))
    encoder = models.encoder()
    single = _best(lambda: [encoder.compute_face_descriptor(chip) for chip in chips], repeats)[0]
    batched = _best(lambda: encoder.compute_face_descriptor(chips), repeats)[0]
    return single, batched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/faces_throughput.{md,json}")
    args = parser.parse_args()
    folder = SHARED if SHARED.is_dir() else TESTS
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    from neuralens.faces import api  # noqa: PLC0415
    from neuralens.faces.cluster import find_faces, group_faces  # noqa: PLC0415
    from neuralens.imageio import load_image  # noqa: PLC0415

    ours(photos[0]), peer(photos[0])  # load the models once, outside the timings
    rows, peer_faces, our_faces = [], {}, {}
    for photo in photos:
        size = load_image(photo).size
        t_peer, peer_faces[photo] = _best(lambda p=photo: peer(p), args.repeats)
        t_ours, our_faces[photo] = _best(lambda p=photo: ours(p), args.repeats)
        gaps = []
        for centre, code in our_faces[photo]:
            if peer_faces[photo]:
                nearest = min(peer_faces[photo], key=lambda item, c=centre: np.hypot(*np.subtract(item[0], c)))
                gaps.append(float(np.linalg.norm(nearest[1] - code)))
        rows.append(
            {
                "photo": photo.name,
                "size": list(size),
                "face_recognition_s": t_peer,
                "neuralens_s": t_ours,
                "faces_face_recognition": len(peer_faces[photo]),
                "faces_neuralens": len(our_faces[photo]),
                "max_embedding_gap": max(gaps) if gaps else None,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    found, _ = find_faces(photos, progress=False)
    t_single, t_batch = _chip_batches(photos, args.repeats)

    # Verification on every pair of single-face photos, each pipeline with its own embeddings.
    singles = [p for p in photos if p.name not in GROUPS and len(our_faces[p]) == 1 and len(peer_faces[p]) == 1]
    verdicts = {"neuralens": [], "face_recognition": []}
    for a, b in itertools.combinations(singles, 2):
        same = _person(a, 1) == _person(b, 1)
        for name, faces in (("neuralens", our_faces), ("face_recognition", peer_faces)):
            verdicts[name].append((float(np.linalg.norm(faces[a][0][1] - faces[b][0][1])) <= 0.6) == same)
    accuracy = {name: float(np.mean(v)) for name, v in verdicts.items()}

    groups = group_faces(found, api.DEFAULT_THRESHOLD)
    labelled = [[_person(Path(f.photo), f.face.index) for f in g.faces] for g in groups]
    purity = sum(max(labels.count(x) for x in set(labels)) for labels in labelled) / sum(map(len, labelled))
    summary = {
        "machine": machine(),
        "photos": len(photos),
        "folder": str(folder),
        "face_recognition_total_s": sum(r["face_recognition_s"] for r in rows),
        "neuralens_total_s": sum(r["neuralens_s"] for r in rows),
        "chips": len(found),
        "chips_one_by_one_s": t_single,
        "chips_batched_s": t_batch,
        "pairs": len(verdicts["neuralens"]),
        "pair_accuracy": accuracy,
        "cluster_groups": len(groups),
        "cluster_faces": len(found),
        "cluster_purity": purity,
        "cluster_members": labelled,
        "rows": rows,
    }
    lines = [
        "| photo | size | faces (face_recognition / neuralens) | face_recognition | neuralens | max embedding gap |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        gap = "n/a" if r["max_embedding_gap"] is None else f"{r['max_embedding_gap']:.3f}"
        lines.append(
            f"| {r['photo']} | {r['size'][0]}x{r['size'][1]} | {r['faces_face_recognition']} / {r['faces_neuralens']} "
            f"| {r['face_recognition_s']:.3f} s | {r['neuralens_s']:.3f} s | {gap} |"
        )
    n = len(photos)
    lines += [
        f"| **all {n}** | | | **{summary['face_recognition_total_s']:.2f} s ({summary['face_recognition_total_s'] / n:.3f} s/photo)** "
        f"| **{summary['neuralens_total_s']:.2f} s ({summary['neuralens_total_s'] / n:.3f} s/photo)** | |",
        "",
        f"Encoding the {len(found)} aligned chips: one by one {t_single:.3f} s, in one dlib batch {t_batch:.3f} s.",
        f"Verification at 0.6 on {summary['pairs']} pairs of single-face photos: neuralens "
        f"{accuracy['neuralens']:.3f}, face_recognition {accuracy['face_recognition']:.3f}.",
        f"Clustering: {len(found)} faces in {len(groups)} group(s), purity {purity:.3f}: {labelled}.",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        (RESULTS / "faces_throughput.json").write_text(json.dumps(summary, indent=1) + "\n")
        (RESULTS / "faces_throughput_table.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
