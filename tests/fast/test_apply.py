"""Applying a style model: the network keeps any size, a saved model reloads bit-identically, and
`neuralens stylize --model` stylizes files and folders with one-line errors for bad input."""

import numpy as np
import torch
from PIL import Image

from neuralens.fast import StyleModel, TransformerNet, load_model
from neuralens.fast import model as model_module

FAST = ["--device", "cpu", "--quiet"]


def _saved_model(path, width=8):
    torch.manual_seed(0)
    return StyleModel(TransformerNet(width), {"name": "tiny"}, device="cpu").save(path)


def test_output_size_equals_input_size_for_odd_sizes():
    network = TransformerNet(8).eval()
    with torch.no_grad():
        for h, w in [(37, 53), (5, 7), (64, 48), (1, 9)]:
            assert network(torch.rand(1, 3, h, w)).shape == (1, 3, h, w)


def test_saved_model_reloads_bit_identically(tmp_path):
    path = _saved_model(tmp_path / "m.pt")
    saved = torch.load(path, weights_only=True)["state"]
    reloaded = load_model(path, device="cpu").network.state_dict()
    for name, tensor in saved.items():
        assert torch.equal(reloaded[name].half(), tensor), name
    again = load_model(path, device="cpu").save(tmp_path / "again.pt")
    assert all(
        torch.equal(a, b) for a, b in zip(saved.values(), torch.load(again, weights_only=True)["state"].values())
    )


def test_strength_and_colour_and_tiles(tmp_path, content_image, monkeypatch):
    model = load_model(_saved_model(tmp_path / "m.pt"), device="cpu", precision="fp32")
    photo = model.stylize(content_image, strength=0.0)
    assert photo.size == content_image.size
    assert np.abs(np.asarray(photo, float) - np.asarray(content_image, float)).max() <= 1  # strength 0: the photo
    whole = model.stylize(content_image, preserve_color="luminance")
    monkeypatch.setitem(model_module.MAX_WHOLE_PIXELS, model.network.architecture, 100)
    monkeypatch.setattr(model_module, "TILE", 32)
    monkeypatch.setattr(model_module, "TILE_OVERLAP", 8)
    tiled = model.stylize(content_image, preserve_color="luminance")
    assert tiled.size == whole.size == content_image.size


def test_stylize_cli_with_a_model(tmp_path, image_files, run_cli, cli_error):
    content, _ = image_files
    path = _saved_model(tmp_path / "m.pt")
    out = tmp_path / "out.png"
    code, _, err = run_cli("stylize", content, "--model", path, "-o", out, "--size", "40", *FAST)
    assert code == 0, err
    assert Image.open(out).size == (40, 30)
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.open(content).save(folder / "a.png")
    Image.open(content).save(folder / "b.jpg")
    code, _, err = run_cli("stylize", folder, "--model", path, "-o", tmp_path / "results", *FAST)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["a.png", "b.png"]
    assert "no such model" in cli_error("stylize", content, "--model", tmp_path / "nope.pt", "-o", out, *FAST)
    assert "not both" in cli_error("stylize", content, content, "--model", path, "-o", out, *FAST)
    assert "--strength must be" in cli_error("stylize", content, "--model", path, "--strength", "2", "-o", out)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    assert "not a readable" in cli_error("stylize", content, "--model", tmp_path / "junk.pt", "-o", out, *FAST)
    torch.save({"format": "neuralens-fast-style", "version": 99, "width": 8, "state": {}}, tmp_path / "new.pt")
    assert "newer neuralens" in cli_error("stylize", content, "--model", tmp_path / "new.pt", "-o", out, *FAST)
    assert "STYLE image, or a trained model" in cli_error("stylize", content, "-o", out, *FAST)


SHIPPED = ("starry-night", "the-scream", "woman-with-hat", "shipwreck")


def test_every_shipped_model_loads_and_stylizes_a_small_image(content_image):
    from neuralens.fast import builtin_names, model_info

    names = builtin_names()
    assert set(SHIPPED) <= set(names), names
    small = content_image.resize((64, 48))
    for name in names:
        model = load_model(name, device="cpu")
        out = model.stylize(small)
        assert out.size == (64, 48)
        assert np.asarray(out, float).std() > 1  # a picture, not a flat colour
        info = model_info(name)
        assert info["info"]["painting"] and info["report"]["settings"]  # how it was made travels with it
