"""Training the AdaIN decoder: a few steps lower the loss and write every file, a checkpoint resumes to exactly the
same state, stopping early saves, and `neuralens train-decoder` refuses bad input with one line."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from neuralens.fast.arbitrary import load_arbitrary, read_decoder_file
from neuralens.fast.decoder_options import DecoderTrainOptions
from neuralens.fast.decoder_training import train_decoder
from neuralens.fast.training import output_files
from neuralens.options import OptionError

SAMPLES = Path(__file__).resolve().parent.parent.parent / "neuralens" / "samples"

# The smallest settings that still train: 32-px crops, a 4-wide decoder, two crops a step, 4 painting crops pooled.
TINY = {
    "size": 32,
    "width": 4,
    "batch_size": 2,
    "style_pool": 4,
    "learning_rate": 1e-3,
    "preview_every": 0,
    "device": "cpu",
    "precision": "fp32",
    "progress": False,
}


@pytest.fixture(scope="module")
def tiny_paintings(tmp_path_factory):
    """Two small paintings to train on and one in holdout/ (kept out, shown in the preview)."""
    folder = tmp_path_factory.mktemp("paintings")
    (folder / "holdout").mkdir()
    for name, where in (("starry_night.jpg", folder), ("the_scream.jpg", folder), ("the_scream.jpg", None)):
        image = Image.open(SAMPLES / name).convert("RGB")
        image.thumbnail((64, 64), Image.LANCZOS)
        if where is None:  # the held-out one: a mirrored, recoloured scream
            image.transpose(Image.FLIP_LEFT_RIGHT).convert("L").convert("RGB").save(folder / "holdout" / "grey.jpg")
        else:
            image.save(where / name, quality=92)
    return folder


def test_a_few_steps_lower_the_loss_and_write_every_file(tmp_path, tiny_photos, tiny_paintings):
    photos, _ = tiny_photos
    result = train_decoder(photos, tiny_paintings, tmp_path / "d.pt", iterations=8, **TINY)
    assert result.iterations == 8 and not result.stopped
    first = result.history[0]
    assert result.final_losses["total"] < first["total"]
    assert result.paintings == 2 and [Path(p).name for p in result.held_out_paintings] == ["grey.jpg"]
    files = output_files(tmp_path / "d.pt")
    for key in ("model", "report", "loss", "preview"):
        assert files[key].is_file(), key
    assert not files["checkpoint"].exists()
    report = json.loads(files["report"].read_text())
    assert report["settings"]["width"] == 4 and report["result"]["iterations"] == 8
    info = read_decoder_file(files["model"])["info"]
    assert info["held_out_paintings"] == ["grey.jpg"] and info["iterations"] == 8
    model = load_arbitrary(files["model"], device="cpu", precision="fp32")
    assert model.stylize(SAMPLES / "chelsea.jpg", tiny_paintings / "starry_night.jpg", size=40).size[0] == 40


def test_resuming_a_checkpoint_gives_the_same_state_as_not_stopping(tmp_path, tiny_photos, tiny_paintings):
    photos, _ = tiny_photos
    straight = train_decoder(photos, tiny_paintings, tmp_path / "a.pt", iterations=4, checkpoint_every=2, **TINY)
    half = train_decoder(photos, tiny_paintings, tmp_path / "b.pt", iterations=2, checkpoint_every=2, **TINY)
    resumed = train_decoder(
        photos, tiny_paintings, tmp_path / "b.pt", iterations=4, checkpoint_every=2, resume=half.checkpoint_path, **TINY
    )
    assert resumed.iterations == 4
    a = torch.load(straight.checkpoint_path, weights_only=True)
    b = torch.load(resumed.checkpoint_path, weights_only=True)
    for name, tensor in a["decoder"].items():
        assert torch.equal(tensor, b["decoder"][name]), name
    for key in ("photo_generator", "painting_generator", "pick_generator"):
        assert torch.equal(a[key], b[key]), key
    assert [h["total"] for h in a["history"]] == [h["total"] for h in b["history"]]


def test_should_stop_saves_the_decoder_and_a_checkpoint(tmp_path, tiny_photos, tiny_paintings):
    photos, _ = tiny_photos
    calls = []
    result = train_decoder(
        photos, tiny_paintings, tmp_path / "s.pt", iterations=50, should_stop=lambda: len(calls) >= 2,
        callback=calls.append, **TINY
    )  # fmt: skip
    assert result.stopped and result.iterations == 2
    assert result.model_path.is_file() and result.checkpoint_path.is_file()


def test_the_reconstruction_term_trains_the_decoder_to_invert_the_encoder(tmp_path, tiny_photos, tiny_paintings):
    photos, _ = tiny_photos
    # The pixel term alone (content and style weights 0): its gradient reaches the decoder, so it falls.
    alone = {**TINY, "content_weight": 0.0, "style_weight": 0.0, "reconstruction_weight": 1.0, "learning_rate": 3e-3}
    result = train_decoder(photos, tiny_paintings, tmp_path / "r.pt", iterations=20, **alone)
    first, last = result.history[0], result.history[-1]
    assert first["total"] == pytest.approx(first["reconstruction"])
    assert last["reconstruction"] < 0.8 * first["reconstruction"]
    # Off by default; a resumed run may switch it on and change the other weights (fine-tuning a decoder).
    plain = train_decoder(photos, tiny_paintings, tmp_path / "p.pt", iterations=2, checkpoint_every=2, **TINY)
    assert "reconstruction" not in plain.final_losses
    tuned = train_decoder(
        photos, tiny_paintings, tmp_path / "p.pt", iterations=3, checkpoint_every=3, resume=plain.checkpoint_path,
        **{**TINY, "reconstruction_weight": 5.0, "style_weight": 2.0},
    )  # fmt: skip
    losses = tuned.final_losses
    assert losses["total"] == pytest.approx(losses["content"] + 2 * losses["style"] + 5 * losses["reconstruction"])
    settings = json.loads(output_files(tmp_path / "p.pt")["report"].read_text())["settings"]
    assert settings["reconstruction_weight"] == 5.0 and settings["style_weight"] == 2.0
    # A plain resume of the tuned checkpoint goes on with its weights, not the defaults.
    train_decoder(photos, tiny_paintings, tmp_path / "p.pt", iterations=4, resume=tuned.checkpoint_path, **TINY)
    settings = json.loads(output_files(tmp_path / "p.pt")["report"].read_text())["settings"]
    assert settings["reconstruction_weight"] == 5.0 and settings["style_weight"] == 2.0


def test_options_are_checked():
    with pytest.raises(OptionError, match="zoom"):
        DecoderTrainOptions(zoom=0.5).validate()
    assert DecoderTrainOptions().validate().style_weight == 10.0


@pytest.fixture()
def decoder_cli(monkeypatch):
    from neuralens import cli

    if "neuralens.fast.decoder_cli" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "neuralens.fast.decoder_cli"])


def test_train_decoder_cli(tmp_path, tiny_photos, tiny_paintings, decoder_cli, run_cli):
    photos, _ = tiny_photos
    args = ["--size", 32, "--width", 4, "--batch-size", 2, "--style-pool", 2, "--preview-every", 0]
    code, out, err = run_cli(
        "train-decoder", "--photos", photos, "--styles", tiny_paintings, "-o", tmp_path / "d.pt", "--iterations", 2,
        "--device", "cpu", "--quiet", "--checkpoint-every", 2, *args
    )  # fmt: skip
    assert code == 0, err
    assert f"wrote {tmp_path / 'd.pt'}" in out
    # --resume takes the loss weights given and keeps the checkpoint's others; a plain --resume keeps them all.
    report = output_files(tmp_path / "d.pt")["report"]
    for more, weights in ((["--reconstruction-weight", 3], (3.0, 10.0)), ([], (3.0, 10.0))):
        steps = 3 if more else 4
        code, _, err = run_cli(
            "train-decoder", "--photos", photos, "--styles", tiny_paintings, "-o", tmp_path / "d.pt", "--quiet",
            "--resume", tmp_path / "d.checkpoint.pt", "--iterations", steps, "--checkpoint-every", 1, *more
        )  # fmt: skip
        assert code == 0, err
        settings = json.loads(report.read_text())["settings"]
        assert (settings["reconstruction_weight"], settings["style_weight"]) == weights


def test_train_decoder_cli_errors(tmp_path, tiny_photos, tiny_paintings, decoder_cli, cli_error, run_cli):
    photos, style = tiny_photos
    base = ["train-decoder", "--photos", photos, "--styles", tiny_paintings, "--iterations", 1, "--quiet"]
    assert ".pt file" in cli_error(*base, "-o", tmp_path / "d.onnx")
    assert "--zoom" in cli_error(*base, "-o", tmp_path / "d.pt", "--zoom", 0.5)
    missing = tmp_path / "none"
    assert str(missing) in cli_error("train-decoder", "--photos", photos, "--styles", missing, "-o", tmp_path / "d.pt")
    not_ours = tmp_path / "other.checkpoint.pt"
    torch.save({"format": "neuralens-fast-checkpoint", "version": 1}, not_ours)
    assert "not a neuralens training checkpoint" in cli_error(*base, "-o", tmp_path / "d.pt", "--resume", not_ours)
