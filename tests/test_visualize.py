"""neuralens.visualize: receptive fields, top patches, unit maximisation, reconstruction sheets, contact sheets,
and the `neuralens visualize` command's error handling. Tiny images and few steps keep it fast on a CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neuralens.backbone import VGG19, load_vgg19
from neuralens.backbone.vgg19 import CONV_NAMES
from neuralens.cli import main
from neuralens.errors import NeuralensError
from neuralens.imageio import image_to_tensor, resize_long_side
from neuralens.visualize import (
    contact_sheet,
    layer_units,
    maximize_unit,
    receptive_field,
    receptive_fields,
    reconstruction_sheet,
    sheet_layout,
    top_patches,
    unit_activation,
    units_sheet,
)
from neuralens.visualize.sheets import BACKGROUND
from neuralens.visualize.units import format_activation

SAMPLES = Path(__file__).resolve().parent.parent / "neuralens" / "samples"


@pytest.fixture(scope="module")
def small_images():
    """Three bundled samples at 48 px (long side), as PIL images."""
    return [
        resize_long_side(Image.open(SAMPLES / f"{n}.jpg").convert("RGB"), 48)
        for n in ("chelsea", "tubingen", "the_scream")
    ]


@pytest.fixture
def image_dir(tmp_path, small_images):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, im in enumerate(small_images):
        im.save(folder / f"img{i}.png")
    return folder


# -- receptive fields -----------------------------------------------------------------------------------------


def test_receptive_field_sizes_match_hand_computation():
    # By hand: each 3x3 conv adds 2 * jump, each 2x2/2 pool adds 1 * jump and doubles the jump.
    #   conv1_1: 1 + 2 = 3;  conv1_2: 3 + 2 = 5;  pool1: 5 + 1 = 6 (jump 2)
    #   conv2_1: 6 + 4 = 10; conv2_2: 14;         pool2: 14 + 2 = 16 (jump 4)
    #   conv3_1: 16 + 8 = 24; 3_2: 32; 3_3: 40; 3_4: 48; pool3: 48 + 4 = 52 (jump 8)
    #   conv4_1: 52 + 16 = 68; 4_4: 116;                  pool4: 116 + 8 = 124 (jump 16)
    #   conv5_1: 124 + 32 = 156;                          pool5: 252 + 16 = 268 (jump 32)
    expected = {
        "relu1_1": (3, 1),
        "relu1_2": (5, 1),
        "pool1": (6, 2),
        "relu2_1": (10, 2),
        "relu2_2": (14, 2),
        "pool2": (16, 4),
        "relu3_1": (24, 4),
        "relu3_4": (48, 4),
        "pool3": (52, 8),
        "relu4_1": (68, 8),
        "relu4_4": (116, 8),
        "pool4": (124, 16),
        "relu5_1": (156, 16),
        "pool5": (268, 32),
    }
    for layer, (size, jump) in expected.items():
        rf = receptive_field(layer)
        assert (rf.size, rf.jump) == (size, jump), layer
    # Centres: position 0 of pool1 lies between pixels 0 and 1; each pool moves it by half the old jump.
    assert receptive_field("relu1_1").center(5, 7) == (5.0, 7.0)
    assert receptive_field("pool1").center(0, 0) == (0.5, 0.5)
    assert receptive_field("relu3_1").center(2, 3) == (1.5 + 2 * 4, 1.5 + 3 * 4)
    assert receptive_field("relu4_1").start == 3.5
    # Boxes: pool1 at (0, 0) covers relu1_2 positions 0 and 1, i.e. pixels -2 ... 3.
    assert receptive_field("pool1").box(0, 0) == (-2, -2, 4, 4)
    assert receptive_field("relu3_1").box(0, 0) == (-10, -10, 14, 14)
    assert receptive_field("relu3_1").box(0, 0, (64, 48)) == (0, 0, 14, 14)
    # relu3_1 at (11, 15): centre (1.5 + 44, 1.5 + 60) = (45.5, 61.5), 24 px -> x 50 ... 73, y 34 ... 57.
    assert receptive_field("relu3_1").box(11, 15) == (50, 34, 74, 58)
    assert receptive_field("relu3_1").box(11, 15, (64, 48)) == (50, 34, 64, 48)
    assert set(receptive_fields()) >= {"conv1_1", "pool5"}
    assert layer_units("relu3_1") == 256 and layer_units("pool5") == 512 and layer_units("conv1_2") == 64


@pytest.mark.parametrize("layer, position", [("relu2_2", (5, 7)), ("pool2", (0, 3)), ("relu3_1", (7, 4))])
def test_receptive_field_matches_gradient_support(layer, position):
    """The pixels whose change moves one activation are exactly the (clamped) receptive field: checked with
    all-positive weights and average pooling, so that no ReLU or max switches off part of the field."""
    weights = {}
    for conv in CONV_NAMES[: 4 + 4]:
        out_ch = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}[int(conv[4])]
        in_ch = 3 if conv == "conv1_1" else (out_ch // 2 if conv.endswith("_1") else out_ch)
        weights[conv] = (torch.full((out_ch, in_ch, 3, 3), 1e-3), torch.full((out_ch,), 1.0))
    model = VGG19(weights, "torchvision", "avg", layer)
    image = torch.rand(1, 3, 40, 36, requires_grad=True)
    act = model(image, [layer])[layer]
    y, x = position
    act[0, 0, y, x].backward()
    support = (image.grad[0].abs().sum(0) > 0).nonzero()
    top, left = support.min(0).values.tolist()
    bottom, right = (support.max(0).values + 1).tolist()
    assert (left, top, right, bottom) == receptive_field(layer).box(y, x, (36, 40))


def test_unknown_layer_and_unit_out_of_range():
    with pytest.raises(NeuralensError, match="unknown layer"):
        receptive_field("relu6_1")
    with pytest.raises(NeuralensError, match="out of range"):
        maximize_unit("relu2_1", 128, size=16, iterations=1)


# -- top patches ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return load_vgg19("relu2_1", device="cpu")


def _brute_force(model, images, layer, unit):
    """Every (activation, image index, y, x) of ``unit``, strongest first."""
    entries = []
    for i, im in enumerate(images):
        with torch.no_grad():
            a = model(image_to_tensor(im), [layer])[layer][0, unit]
        for y in range(a.shape[0]):
            for x in range(a.shape[1]):
                entries.append((float(a[y, x]), i, y, x))
    return sorted(entries, key=lambda e: -e[0]), entries


def test_top_patches_are_the_argmax_activations(model, small_images):
    layer = "relu2_1"
    rf = receptive_field(layer)
    results = top_patches(small_images, layer, units=[0, 7, 33], top=5, size=None, device="cpu", model=model)
    assert [r.unit for r in results] == [0, 7, 33]
    for r in results:
        ranked, everything = _brute_force(model, small_images, layer, r.unit)
        lookup = {(i, y, x): v for v, i, y, x in everything}
        assert len(r.patches) == 5
        got = [p.activation for p in r.patches]
        assert got == pytest.approx([v for v, *_ in ranked[:5]], rel=1e-5)
        assert r.patches[0].activation == pytest.approx(max(lookup.values()), rel=1e-5)
        for p in r.patches:
            y, x = p.position
            assert lookup[(p.image_index, y, x)] == pytest.approx(p.activation, rel=1e-5)
            im = small_images[p.image_index]
            assert p.box == rf.box(y, x, im.size)
            # The tile is the receptive-field window; the part inside the image is the image's pixels.
            full = rf.box(y, x)
            assert p.image.size == (rf.size, rf.size)
            inside = p.image.crop((p.box[0] - full[0], p.box[1] - full[1], p.box[2] - full[0], p.box[3] - full[1]))
            assert np.array_equal(np.asarray(inside), np.asarray(im.crop(p.box)))


def test_top_patches_default_units_are_the_strongest(model, small_images):
    layer = "relu2_1"
    results = top_patches(small_images, layer, count=3, top=2, size=None, device="cpu", model=model)
    with torch.no_grad():
        peaks = torch.stack(
            [model(image_to_tensor(im), [layer])[layer][0].amax(dim=(1, 2)) for im in small_images]
        ).amax(0)
    assert [r.unit for r in results] == peaks.argsort(descending=True)[:3].tolist()


def test_top_patches_min_distance_spreads_them(model, small_images):
    results = top_patches(
        small_images, "relu2_1", units=[5], top=9, size=None, min_distance=3, device="cpu", model=model
    )
    patches = results[0].patches
    ranked, _ = _brute_force(model, small_images, "relu2_1", 5)
    assert patches[0].activation == pytest.approx(ranked[0][0], rel=1e-5)
    for i, a in enumerate(patches):
        for b in patches[:i]:
            if a.image_index == b.image_index:
                assert max(abs(a.position[0] - b.position[0]), abs(a.position[1] - b.position[1])) >= 3


def test_units_sheet_has_one_labelled_row_per_unit(model, small_images):
    results = top_patches(small_images, "relu2_1", units=[1, 2], top=4, size=None, device="cpu", model=model)
    sheet = units_sheet(results, tile=32)
    layout = sheet_layout(
        8,
        (32, 32),
        4,
        [format_activation(p.activation) for r in results for p in r.patches],
        ["unit 1", "unit 2"],
        "relu2_1: strongest patches per unit (receptive field 10 px)",
        11,
    )
    assert (layout.rows, layout.columns) == (2, 4)
    assert sheet.size == layout.size
    for box in layout.row_labels:  # the row labels are drawn
        assert np.asarray(sheet.crop(box)).min() < 128


# -- maximisation ---------------------------------------------------------------------------------------------


def test_maximize_raises_the_units_activation(model):
    result = maximize_unit("relu2_1", 3, size=32, iterations=8, device="cpu", model=model, seed=1)
    assert result.image.size == (32, 32)
    assert len(result.history) == 8
    assert result.final_activation > 1.5 * result.start_activation
    with torch.no_grad():  # the returned image (8-bit) really drives the unit harder than the start
        again = float(unit_activation(model, image_to_tensor(result.image), "relu2_1", 3))
    assert again == pytest.approx(result.final_activation, rel=0.05)


# -- sheets ---------------------------------------------------------------------------------------------------


def test_contact_sheet_places_tiles_and_captions():
    tiles = [Image.new("RGB", (20, 10), (200, 0, 0)), Image.new("RGB", (20, 10), (0, 0, 200)), None]
    captions = ["a=1", "a=2\nb=3", "empty"]
    sheet = contact_sheet(tiles, captions, columns=2, title="T")
    layout = sheet_layout(3, (20, 10), 2, captions, None, "T")
    assert sheet.size == layout.size and (layout.columns, layout.rows) == (2, 2)
    for tile, box in zip(tiles[:2], layout.tiles):
        assert np.array_equal(np.asarray(sheet.crop(box)), np.asarray(tile))
    for box in layout.captions:
        region = np.asarray(sheet.crop(box))
        assert (region != BACKGROUND).any(axis=2).any(), "caption missing"
    with pytest.raises(NeuralensError):
        contact_sheet(tiles, ["only one"])


def test_reconstruction_sheet_has_every_labelled_tile(small_images):
    calls = []
    result = reconstruction_sheet(
        small_images[0], size=32, iterations=1, device="cpu", progress=lambda i, n, c: calls.append((i, n, c))
    )
    kinds = [(r.kind, tuple(r.layers)) for r in result.reconstructions]
    assert kinds == [("content", (layer,)) for layer in ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")] + [
        ("style", tuple(f"relu{b}_1" for b in range(1, n + 1))) for n in range(1, 6)
    ]
    assert len(calls) == 10 and calls[-1][:2] == (9, 10)
    captions = (
        ["original"]
        + [r.caption for r in result.reconstructions[:5]]
        + [""]
        + [r.caption for r in result.reconstructions[5:]]
    )
    layout = sheet_layout(
        12,
        result.original.size,
        6,
        captions,
        None,
        "What VGG19 keeps: content reconstructions (top), style reconstructions (bottom)",
    )
    assert result.sheet.size == layout.size
    assert np.array_equal(np.asarray(result.sheet.crop(layout.tiles[0])), np.asarray(result.original))
    for r, box in zip(result.reconstructions, layout.tiles[1:6] + layout.tiles[7:]):
        assert np.array_equal(np.asarray(result.sheet.crop(box)), np.asarray(r.image))
    for i, box in enumerate(layout.captions):
        labelled = (np.asarray(result.sheet.crop(box)) != BACKGROUND).any()
        assert labelled == (i != 6), i  # every tile but the empty slot under the original has a caption


# -- the command line -----------------------------------------------------------------------------------------


def test_cli_units_writes_a_sheet(image_dir, tmp_path, capsys):
    out = tmp_path / "units.png"
    rc = main(
        [
            "visualize",
            "units",
            "--layer",
            "relu1_2",
            "--images",
            str(image_dir),
            "--units",
            "0,5",
            "--top",
            "3",
            "--size",
            "32",
            "--device",
            "cpu",
            "-o",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert Image.open(out).size[0] > 3 * 48


def test_cli_maximize_writes_an_image(tmp_path, capsys):
    out = tmp_path / "unit.png"
    rc = main(
        [
            "visualize",
            "maximize",
            "--layer",
            "relu1_2",
            "--unit",
            "4",
            "--size",
            "24",
            "--iterations",
            "3",
            "--device",
            "cpu",
            "-o",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert Image.open(out).size == (24, 24)
    assert "mean activation" in capsys.readouterr().err


def test_cli_errors_are_one_line(image_dir, tmp_path, cli_error):
    out = str(tmp_path / "x.png")
    assert "unknown layer" in cli_error(
        "visualize", "units", "--layer", "relu9_1", "--images", str(image_dir), "-o", out
    )
    assert "out of range" in cli_error(
        "visualize", "units", "--layer", "relu1_1", "--units", "3,64", "--images", str(image_dir), "-o", out
    )
    assert "out of range" in cli_error("visualize", "maximize", "--layer", "relu4_1", "--unit", "512", "-o", out)
    assert "out of range" in cli_error("visualize", "maximize", "--layer", "relu4_1", "--unit", "-1", "-o", out)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in cli_error("visualize", "units", "--layer", "relu1_1", "--images", str(empty), "-o", out)
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a picture")
    assert "not an image" in cli_error("visualize", "units", "--layer", "relu1_1", "--images", str(fake), "-o", out)
    assert "not an image" in cli_error("visualize", "reconstructions", str(fake), "-o", out)
    assert "no such file" in cli_error(
        "visualize", "units", "--layer", "relu1_1", "--images", str(tmp_path / "nope"), "-o", out
    )
    assert "too small" in cli_error(
        "visualize", "units", "--layer", "pool5", "--images", str(image_dir), "--size", "16", "-o", out
    )
    assert "unknown output format" in cli_error(
        "visualize", "maximize", "--layer", "relu1_1", "--unit", "1", "-o", str(tmp_path / "x.txt")
    )
