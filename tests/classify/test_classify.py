"""Transfer learning end to end on photos against paintings: training, cache, reports, errors, export."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from neuralens import classify
from neuralens.classify.features import FeatureCache, view
from neuralens.errors import NeuralensError


def test_training_fits_the_task_and_reports_everything(trained):
    model, path = trained
    report = model.report
    assert model.classes == ["painting", "photo"]
    assert report.train_accuracy == 1.0
    assert report.val_images >= 2 and report.validation is not None
    saved = json.loads(path.with_suffix(".report.json").read_text())
    assert np.array(saved["validation"]["confusion"]).sum() == report.val_images
    assert {row["class"] for row in saved["validation"]["per_class"]} == {"painting", "photo"}
    for name in ("confusion", "curve"):
        assert Image.open(report.files[name]).size[0] > 100
    assert saved["dataset"]["counts"] == {"painting": 6, "photo": 5}


def test_saved_model_predicts_the_same(trained, photos_vs_paintings):
    model, path = trained
    loaded = classify.load(path)
    image = next((photos_vs_paintings / "painting").iterdir())
    a, b = model.predict(image, top_k=2), loaded.predict(image, top_k=2)
    assert a.label == b.label == "painting"
    assert abs(a.probability - b.probability) < 1e-5
    assert [name for name, _ in b.top] == ["painting", "photo"]
    assert b.to_dict()["top"][0]["label"] == "painting"


def test_cache_is_reused_and_invalidated_by_a_changed_file(dataset_copy, tmp_path):
    cache = tmp_path / "cache"
    first = classify.train(dataset_copy, cache=str(cache), epochs=5).report
    assert first.cached_features == 0
    second = classify.train(dataset_copy, cache=str(cache), epochs=5, head="mlp").report
    assert second.cached_features == 11
    changed = next((dataset_copy / "photo").iterdir())
    Image.open(changed).rotate(90).save(changed)
    third = classify.train(dataset_copy, cache=str(cache), epochs=5).report
    assert third.cached_features == 10


def test_augmented_views_are_deterministic_and_cached(dataset_copy, tmp_path):
    image = Image.open(next((dataset_copy / "photo").iterdir()))
    assert np.array_equal(np.asarray(view(image, 64, 3, "abc")), np.asarray(view(image, 64, 3, "abc")))
    assert not np.array_equal(np.asarray(view(image, 64, 3, "abc")), np.asarray(view(image, 64, 4, "abc")))
    model = classify.train(dataset_copy, cache=str(tmp_path), augment=2, epochs=3)
    assert model.report.options["augment"] == 2
    shapes = sorted(np.load(p).shape for p in tmp_path.rglob("*.npy"))
    held_out = model.report.val_images
    assert shapes == [(1, 1280)] * held_out + [(3, 1280)] * (11 - held_out)  # extra views for training photos only


def test_same_seed_same_head(photos_vs_paintings, tmp_path):
    a, b = (classify.train(photos_vs_paintings, head="mlp", epochs=4, seed=5) for _ in range(2))
    c = classify.train(photos_vs_paintings, head="mlp", epochs=4, seed=6)
    weight = [m.head.net[0].weight for m in (a, b, c)]
    assert torch.equal(weight[0], weight[1]) and not torch.equal(weight[0], weight[2])


def test_unreadable_file_is_skipped_with_a_warning(dataset_copy):
    (dataset_copy / "photo" / "broken.jpg").write_bytes(b"not a jpeg")
    (dataset_copy / "photo" / "notes.txt").write_text("ignored: not an image name")
    lines = []
    model = classify.train(dataset_copy, epochs=3, log=lines.append)
    assert any("skipped 1 unreadable" in line and "broken.jpg" in line for line in lines)
    assert lines[0] == "2 classes: painting (6), photo (6)" and "readable: painting (6), photo (5)" in lines
    assert model.report.skipped and model.report.skipped[0][0].endswith("broken.jpg")


def test_fine_tune_trains_the_last_block_and_round_trips(dataset_copy, tmp_path):
    model = classify.train(dataset_copy, tmp_path / "ft.pt", epochs=20, fine_tune=1, fine_tune_learning_rate=1e-4)
    assert len(model.report.fine_tune) == 1
    loaded = classify.load(tmp_path / "ft.pt")
    assert loaded.fine_tuned == model.fine_tuned
    image = next((dataset_copy / "painting").iterdir())
    assert abs(model.predict(image).probability - loaded.predict(image).probability) < 1e-2  # fp16 block


def test_bad_model_files_give_one_line_errors(trained, tmp_path):
    _, path = trained
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(NeuralensError, match="not a readable neuralens classifier"):
        classify.load(broken)
    data = torch.load(path, weights_only=True)
    data["backbone"] = "vgg19"
    other = tmp_path / "other.pt"
    torch.save(data, other)
    with pytest.raises(NeuralensError, match="trained on vgg19 weights efficientnet-lite0-"):
        classify.load(other).predict(Image.new("RGB", (64, 64)))
    data["backbone"] = "resnet-9000"
    torch.save(data, other)
    with pytest.raises(NeuralensError, match="unknown backbone 'resnet-9000'"):
        classify.load(other)


def test_cli_train_evaluate_predict(run_cli, cli_error, dataset_copy, tmp_path):
    out = tmp_path / "m.pt"
    code, stdout, err = run_cli("classify", "train", dataset_copy, "-o", out, "--epochs", "30", "--quiet")
    assert code == 0, err
    assert "2 classes: painting (6), photo (5)" in err
    assert "train accuracy 100.0 %" in stdout and out.exists()
    code, stdout, _ = run_cli("classify", "evaluate", out, dataset_copy, "--json")
    assert code == 0 and json.loads(stdout)["images"] == 11
    code, stdout, _ = run_cli("classify", "predict", out, dataset_copy / "painting", "--top-k", "2")
    lines = stdout.strip().splitlines()
    assert code == 0 and lines[0] == "file,label,probability,label_2,probability_2" and len(lines) == 7
    csv_path = tmp_path / "p.csv"
    assert run_cli("classify", "predict", out, dataset_copy / "photo", "-o", csv_path)[0] == 0
    assert csv_path.read_text().count("\n") == 6
    notes = tmp_path / "notes.jpg"
    notes.write_text("hello")
    assert "not an image" in cli_error("classify", "predict", out, notes)
    assert "no such classifier file" in cli_error("classify", "predict", tmp_path / "none.pt", notes)


def test_cli_refuses_bad_datasets_and_options(cli_error, tmp_path):
    (tmp_path / "only" / "cats").mkdir(parents=True)
    Image.new("RGB", (40, 40)).save(tmp_path / "only" / "cats" / "a.jpg")
    assert "at least 2" in cli_error("classify", "train", tmp_path / "only", "-o", tmp_path / "m.pt")
    (tmp_path / "only" / "dogs").mkdir()
    assert "'dogs' has no images" in cli_error("classify", "train", tmp_path / "only", "-o", tmp_path / "m.pt")
    assert "--val-split" in cli_error(
        "classify", "train", tmp_path / "only", "-o", tmp_path / "m.pt", "--val-split", "0"
    )
    assert ".pt" in cli_error("classify", "train", tmp_path / "only", "-o", tmp_path / "m.onnx")


def test_cli_refuses_an_unknown_layer(cli_error, photos_vs_paintings, tmp_path):
    line = cli_error("classify", "train", photos_vs_paintings, "-o", tmp_path / "m.pt", "--layer", "relu9_9")
    assert "--layer must be a layer of efficientnet-lite0 (stage1," in line


def test_export_matches_onnxruntime(trained, tmp_path):
    from neuralens.classify.export import export_onnx

    model, _ = trained
    result = export_onnx(model, tmp_path / "m.onnx")
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert json.loads(meta["neuralens.classes"]) == ["painting", "photo"]


def test_feature_cache_ignores_a_damaged_entry(tmp_path):
    cache = FeatureCache("fp", "head", 224, tmp_path)
    cache.put("ab" * 32, np.ones((2, 4), np.float32))
    assert cache.get("ab" * 32, 2).shape == (2, 4) and cache.get("ab" * 32, 3) is None
    next(tmp_path.rglob("*.npy")).write_bytes(b"junk")
    assert cache.get("ab" * 32, 1) is None


def test_should_stop_cancels_training_without_saving(photos_vs_paintings, tmp_path):
    from neuralens.errors import Interrupted

    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Interrupted):
        classify.train(photos_vs_paintings, tmp_path / "m.pt", should_stop=stop, cache=str(tmp_path / "c"))
    assert not (tmp_path / "m.pt").exists()


def test_train_val_layout_keeps_the_split_and_survives_a_leaked_copy_with_augment(photos_vs_paintings, tmp_path):
    """train/ + val/ is kept as given; a file in both (reported) once crashed --augment, whose extra views of its
    training copy were overwritten by the validation copy's single view; a mislabelled validation photo fills the
    mistakes sheet."""
    import shutil

    photos = sorted((photos_vs_paintings / "photo").iterdir())
    paintings = sorted((photos_vs_paintings / "painting").iterdir())
    root = tmp_path / "split"
    layout = {
        "train/photo": photos[:3],
        "val/photo": [*photos[3:], photos[0], paintings[5]],  # a leaked copy, and a painting filed as a photo
        "train/painting": paintings[:4],
        "val/painting": paintings[4:5],
    }
    for folder, files in layout.items():
        (root / folder).mkdir(parents=True)
        for path in files:
            shutil.copy(path, root / folder / path.name)
    lines = []
    model = classify.train(root, tmp_path / "m.pt", augment=1, epochs=60, cache=str(tmp_path / "c"), log=lines.append)
    report = model.report
    assert report.dataset["has_split"] and (report.train_images, report.val_images) == (7, 5)
    assert any("identical files in both train and val" in line and photos[0].name in line for line in lines)
    assert report.train_accuracy == 1.0
    mistakes = report.validation.mistakes()
    assert [(m["source"], m["true"], m["predicted"]) for m in mistakes] == [
        (str(root / "val/photo" / paintings[5].name), "photo", "painting")
    ]
    assert Image.open(report.files["mistakes"]).size[0] >= 128
    saved = json.loads((tmp_path / "m.report.json").read_text())
    assert saved["validation"]["mistakes"][0]["predicted"] == "painting"


def test_cli_progress_bars_and_json(run_cli, photos_vs_paintings, tmp_path):
    out = tmp_path / "m.pt"
    code, stdout, err = run_cli(
        "classify", "train", photos_vs_paintings, "-o", out, "--epochs", "12", "--json", "--cache", tmp_path / "c"
    )
    assert code == 0, err
    assert "features 11/11 image (100 %)" in err and "head 12/12 epoch (100 %)" in err  # lines off a terminal
    report = json.loads(stdout)
    assert report["dataset"]["classes"] == ["painting", "photo"] and len(report["history"]["epochs"]) == 12
    assert np.array(report["validation"]["confusion"]).sum() == report["val_images"]
    painting = sorted((photos_vs_paintings / "painting").iterdir())[0]
    code, stdout, _ = run_cli("classify", "predict", out, painting, "--json", "--top-k", "2", "--cache", tmp_path / "c")
    (row,) = json.loads(stdout)
    assert code == 0 and row["label"] == "painting" and [t["label"] for t in row["top"]] == ["painting", "photo"]


def test_vgg19_backbone_and_layer_have_their_own_cache(photos_vs_paintings, tmp_path):
    import shutil

    root = tmp_path / "small"
    for label in ("photo", "painting"):
        (root / label).mkdir(parents=True)
        for path in sorted((photos_vs_paintings / label).iterdir())[:3]:
            shutil.copy(path, root / label / path.name)
    cache = tmp_path / "c"
    model = classify.train(root, tmp_path / "v.pt", backbone="vgg19", layer="relu3_1", epochs=40, cache=str(cache))
    assert model.head.mean.numel() == 256 and model.report.train_accuracy == 1.0
    classify.train(root, backbone="efficientnet-lite0", epochs=2, cache=str(cache))
    folders = sorted(p.name for p in cache.iterdir())
    assert len(folders) == 2 and any(f.startswith("vgg19") and "-relu3_1-224" in f for f in folders), folders
    loaded = classify.load(tmp_path / "v.pt")
    assert (loaded.backbone, loaded.layer) == ("vgg19", "relu3_1")
    painting = next((root / "painting").iterdir())
    assert abs(loaded.predict(painting).probability - model.predict(painting).probability) < 1e-5
