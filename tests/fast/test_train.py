"""Training a style model: the loss goes down, a checkpoint resumes to exactly the same state, the saved model
reloads bit-identically with its training info, time budgets and stop requests end cleanly with the model
saved, and `neuralens train-style` refuses bad input with one line."""

import json
import os

import pytest
import torch
from PIL import Image

from neuralens.errors import NeuralensError
from neuralens.fast import load_model
from neuralens.fast.model import read_model_file
from neuralens.fast.options import TrainOptions
from neuralens.fast.photos import held_out_indices, holdout_folder_indices
from neuralens.fast.training import output_files, style_name, train
from neuralens.options import OptionError

# The smallest settings that still train a network: 32-px crops, an 8-wide network, two crops a step.
TINY = {
    "size": 32,
    "style_size": 48,
    "width": 8,
    "batch_size": 2,
    "device": "cpu",
    "precision": "fp32",
    "progress": False,
}


def test_a_few_steps_lower_the_loss_and_write_every_file(tmp_path, tiny_photos):
    photos, style = tiny_photos
    result = train(style, photos, tmp_path / "m.pt", iterations=12, **TINY)
    assert result.iterations == 12 and not result.stopped
    first = result.history[0]
    assert first["iteration"] == 1 and result.history[-1]["iteration"] == 12
    assert result.final_losses["total"] < first["total"]
    assert result.photos == 5 and len(result.held_out) == 2  # 7 photos: 2 held out for the preview
    files = output_files(tmp_path / "m.pt")
    for key in ("model", "report", "loss", "preview"):
        assert files[key].is_file(), key
    assert not files["checkpoint"].exists()  # none asked for, not stopped
    assert Image.open(files["loss"]).size == (720, 420)
    report = json.loads(files["report"].read_text())
    assert report["settings"]["width"] == 8 and report["result"]["iterations"] == 12
    assert [h["iteration"] for h in report["result"]["history"]] == [1, 10, 12]


def test_resuming_a_checkpoint_gives_the_same_state_as_not_stopping(tmp_path, tiny_photos):
    photos, style = tiny_photos
    straight = train(style, photos, tmp_path / "a.pt", iterations=4, checkpoint_every=2, **TINY)
    half = train(style, photos, tmp_path / "b.pt", iterations=2, checkpoint_every=2, **TINY)
    resumed = train(
        style, photos, tmp_path / "b.pt", iterations=4, checkpoint_every=2, resume=half.checkpoint_path, **TINY
    )
    assert resumed.iterations == straight.iterations == 4
    a = torch.load(straight.checkpoint_path, weights_only=True)
    b = torch.load(resumed.checkpoint_path, weights_only=True)
    for name, tensor in a["network"].items():
        assert torch.equal(tensor, b["network"][name]), name
    for key, state in a["optimizer"]["state"].items():
        for field, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][key][field]), (key, field)
    assert torch.equal(a["generator"], b["generator"])
    assert [h["total"] for h in a["history"]] == [h["total"] for h in b["history"]]
    assert read_model_file(resumed.model_path)["state"].keys() == read_model_file(straight.model_path)["state"].keys()


def test_the_saved_model_reloads_bit_identically_with_its_info(tmp_path, tiny_photos):
    photos, style = tiny_photos
    result = train(style, photos, tmp_path / "m.pt", iterations=2, command="neuralens train-style ...", **TINY)
    saved = read_model_file(result.model_path)
    model = load_model(result.model_path, device="cpu", precision="fp32")
    for name, tensor in model.network.state_dict().items():
        assert torch.equal(tensor.half(), saved["state"][name]), name
        assert torch.equal(tensor, saved["state"][name].float()), name
    info = model.info
    assert info["name"] == "starry-night" and info["painting"] == "starry_night.jpg"
    assert info["options"] == TrainOptions(iterations=2, **TINY).to_dict()
    assert info["iterations"] == 2 and info["images_per_second"] > 0 and info["seconds"] >= 0
    assert set(info["final_losses"]) == {"content", "style", "tv", "total"}
    assert {"platform", "cpus", "torch", "device", "precision"} <= set(info["machine"])
    assert info["command"] == "neuralens train-style ..."
    assert saved["width"] == 8


def test_init_starts_from_a_trained_model_and_keeps_its_shape(tmp_path, tiny_photos):
    photos, style = tiny_photos
    first = train(style, photos, tmp_path / "a.pt", iterations=2, **TINY)
    start = load_model(first.model_path, device="cpu", precision="fp32").network.state_dict()
    # the steps of a tiny learning rate barely move the weights: the network began at the model's, not at random
    more = train(
        style,
        photos,
        tmp_path / "b.pt",
        iterations=1,
        init=str(first.model_path),
        learning_rate=1e-9,
        **{**TINY, "width": None},
    )
    model = load_model(more.model_path, device="cpu", precision="fp32")
    for name, tensor in model.network.state_dict().items():
        assert torch.allclose(tensor, start[name], atol=1e-3), name
    assert model.info["options"]["init"] == str(first.model_path) and model.info["options"]["width"] == 8
    with pytest.raises(NeuralensError, match="its width is 8, not 16"):
        train(style, photos, tmp_path / "c.pt", iterations=1, init=str(first.model_path), **{**TINY, "width": 16})


def test_a_time_budget_stops_and_saves(tmp_path, tiny_photos):
    photos, style = tiny_photos
    result = train(style, photos, tmp_path / "m.pt", minutes=0.01, iterations=100_000, **TINY)
    assert 1 <= result.iterations < 100_000 and not result.stopped  # the budget ended it, not the step count
    assert load_model(result.model_path, device="cpu").info["iterations"] == result.iterations


def test_should_stop_and_ctrl_c_save_the_model_and_a_checkpoint(tmp_path, tiny_photos):
    photos, style = tiny_photos
    calls = []
    result = train(
        style, photos, tmp_path / "s.pt", iterations=50, should_stop=lambda: calls.append(1) or len(calls) > 2, **TINY
    )
    assert result.stopped and result.iterations == 2
    assert result.checkpoint_path.is_file() and load_model(result.model_path).info["stopped"] is True

    def interrupt(status):
        if status["iteration"] == 3:
            raise KeyboardInterrupt

    result = train(style, photos, tmp_path / "k.pt", iterations=50, callback=interrupt, **TINY)
    assert result.stopped and result.iterations == 3 and result.model_path.is_file()
    assert torch.load(result.checkpoint_path, weights_only=True)["iteration"] == 3


def test_options_and_names():
    with pytest.raises(OptionError, match="minutes must be a number > 0"):
        TrainOptions(minutes=0).validate()
    with pytest.raises(OptionError, match="style_layers"):
        TrainOptions(style_layers="relu9_9").validate()
    assert style_name("a/starry_night.jpg") == "starry-night" and style_name("The Scream.png") == "the-scream"
    assert held_out_indices(5) == [] and len(held_out_indices(7)) == 2 and len(held_out_indices(200)) == 4
    assert held_out_indices(100) == held_out_indices(100)


def test_a_holdout_folder_is_held_out(tmp_path):
    (tmp_path / "holdout").mkdir()
    paths = [tmp_path / "a.jpg", tmp_path / "holdout" / "b.jpg", tmp_path / "c.jpg"]
    assert holdout_folder_indices(tmp_path, paths) == [1]
    assert holdout_folder_indices([tmp_path], paths) == []


def test_unreadable_photos_are_skipped_with_one_warning(tmp_path, tiny_photos):
    photos, style = tiny_photos
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "broken.jpg").write_bytes(b"not a jpeg")
    Image.open(next(photos.glob("*.jpg"))).save(folder / "good.png")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable photo\(s\): .*broken.jpg"):
        result = train(style, folder, tmp_path / "m.pt", iterations=1, **TINY)
    assert result.photos == 1 and len(result.skipped) == 1
    (folder / "good.png").unlink()
    with pytest.raises(NeuralensError, match="none of the 1 image files could be read"):
        train(style, folder, tmp_path / "m.pt", iterations=1, **TINY)


FAST = [
    "--size",
    "32",
    "--style-size",
    "48",
    "--width",
    "8",
    "--batch-size",
    "2",
    "--device",
    "cpu",
    "--precision",
    "fp32",
    "--quiet",
]


def test_train_style_cli(tmp_path, tiny_photos, train_cli, run_cli):
    photos, style = tiny_photos
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, path in enumerate(sorted(photos.glob("*.jpg"))[:2]):
        Image.open(path).save(folder / f"p{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    code, out, err = run_cli(
        "train-style", style, "--photos", folder, "-o", tmp_path / "m.pt", "--iterations", "2", *FAST
    )
    assert code == 0, err
    assert err.count("warning: skipped 1 unreadable photo(s)") == 1 and "broken.png" in err
    assert f"wrote {tmp_path / 'm.pt'}" in out and "m.preview.png" in out
    assert load_model(tmp_path / "m.pt").info["iterations"] == 2


def test_train_style_cli_errors(tmp_path, tiny_photos, train_cli, cli_error):
    photos, style = tiny_photos
    out = str(tmp_path / "m.pt")
    text = tmp_path / "notes.txt"
    text.write_text("not a painting")
    assert "not an image file" in cli_error("train-style", text, "--photos", photos, "-o", out, *FAST)
    assert "no such file" in cli_error("train-style", tmp_path / "missing.jpg", "--photos", photos, "-o", out, *FAST)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images in this folder" in cli_error("train-style", style, "--photos", empty, "-o", out, *FAST)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"junk")
    assert "could be read" in cli_error("train-style", style, "--photos", broken, "-o", out, *FAST)
    assert "--minutes must be a number > 0" in cli_error(
        "train-style", style, "--photos", photos, "-o", out, "--minutes", "0", *FAST
    )
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "cannot write there" in cli_error("train-style", style, "--photos", photos, "-o", blocker / "m.pt", *FAST)
    assert "is a .pt file" in cli_error("train-style", style, "--photos", photos, "-o", tmp_path / "m.png", *FAST)
    assert "no such checkpoint" in cli_error(
        "train-style", style, "--photos", photos, "-o", out, "--resume", tmp_path / "none.pt", *FAST
    )
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert "cannot write there" in cli_error("train-style", style, "--photos", photos, "-o", locked / "m.pt", *FAST)


def test_the_package_level_train_is_the_training_function(tmp_path, tiny_photos):
    from neuralens import fast

    photos, style = tiny_photos
    result = fast.train(
        style,
        photos,
        tmp_path / "m.pt",
        iterations=1,
        size=32,
        width=8,
        batch_size=1,
        preview_every=0,
        progress=False,
        device="cpu",
        precision="fp32",
    )
    assert result.iterations == 1 and (tmp_path / "m.pt").is_file()


def test_a_loss_that_blows_up_is_warned_about_once(tmp_path):
    """A finite loss that rises far above its lowest (a run gone wrong without a NaN) gives one warning and is
    recorded; a falling or noisy loss gives none; a resumed run judges against what the checkpoint had seen."""
    from neuralens.fast import loop

    calm = loop.LoopState()
    for step in range(4 * loop.BLOWUP_WINDOW):
        calm.step = step + 1
        calm.watch(10.0 / (1 + step) + (step % 3))  # falling, with noise
    assert calm.blew_up_at is None

    wild = loop.LoopState()
    with pytest.warns(UserWarning, match="diverged") as caught:
        for step, value in enumerate([1.0] * loop.BLOWUP_WINDOW + [5.0] * 3 * loop.BLOWUP_WINDOW):
            wild.step = step + 1
            wild.watch(value)
    assert len(caught) == 1 and wild.blew_up_at == 2 * loop.BLOWUP_WINDOW

    values = [1.0] * loop.BLOWUP_WINDOW + [5.0] * 3 * loop.BLOWUP_WINDOW
    cut = loop.BLOWUP_WINDOW + loop.BLOWUP_WINDOW // 2  # stopped half-way through the first bad window
    before = loop.LoopState()
    for step, value in enumerate(values[:cut]):
        before.step = step + 1
        before.watch(value)
    torch.save({"watch": before.watch_state()}, tmp_path / "c.pt")  # as the checkpoints store it
    resumed = loop.LoopState(step=cut)
    resumed.restore_watch(torch.load(tmp_path / "c.pt", weights_only=True)["watch"])
    with pytest.warns(UserWarning, match="diverged"):
        for step, value in enumerate(values[cut:], start=cut + 1):
            resumed.step = step
            resumed.watch(value)
    assert resumed.blew_up_at == 2 * loop.BLOWUP_WINDOW
