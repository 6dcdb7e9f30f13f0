"""High resolution: memory estimates, refusal with the largest size that fits, tiles without seams."""

import pytest
import torch

from neuralens import StyleTransfer
from neuralens.errors import NeuralensError
from neuralens.style import memory, tiling

TINY = dict(iterations=2, progress=False, device="cpu", early_stop_patience=0, scales=1)


def test_tile_boxes_cover_the_image_with_overlap():
    boxes = tiling.tile_boxes(300, 500, 128, 32)
    covered = torch.zeros(300, 500)
    for y0, y1, x0, x1 in boxes:
        assert y1 - y0 <= 128 and x1 - x0 <= 128
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    xs = sorted({(x0, x1) for _, _, x0, x1 in boxes})
    for (_, a1), (b0, _) in zip(xs, xs[1:]):
        assert a1 - b0 >= 32  # neighbours share at least the overlap
    assert tiling.tile_boxes(100, 80, 128, 32) == [(0, 100, 0, 80)]


def test_feather_ramps_only_towards_neighbours():
    w = tiling.feather((0, 64, 50, 114), 64, 200, 16)[0, 0]
    assert w[:, 20:40].min() == 1.0  # the middle is the tile's own
    assert w[32, 0] < 0.05 and w[32, -1] < 0.05  # interior left/right sides fade out
    assert w[0, 32] == 1.0 and w[-1, 32] == 1.0  # image top/bottom borders do not
    assert (w[32, 1:16] - w[32, :15]).abs().max() <= 1 / 16 + 1e-6  # a smooth ramp, no step


def test_tiled_gram_equals_the_whole_image_gram(content_image):
    st = StyleTransfer(
        content_image,
        **TINY,
        size=48,
        precision="fp32",
        style_layers="relu1_1,relu2_1,relu3_1",
        content_layers="relu2_2",
    )
    from neuralens.imageio import image_to_tensor

    image = image_to_tensor(content_image.resize((128, 96)))
    whole = {k: v[0] for k, v in st.network.features(image, st.network.style_layers).items()}
    tiled = tiling.tiled_grams(st.network.features, image, st.network.style_layers, tile=96, halo=32)
    for layer, f in whole.items():
        flat = f.reshape(f.shape[0], -1)
        expected = flat @ flat.T / flat.shape[1]
        assert torch.allclose(tiled[layer][0], expected, rtol=0.02, atol=1e-2 * expected.abs().max().item())


def test_memory_estimate_grows_with_pixels_and_precision():
    small, large = memory.estimate_bytes(512, 512), memory.estimate_bytes(1024, 1024)
    assert large - memory.BASE_BYTES == pytest.approx(4 * (small - memory.BASE_BYTES))
    assert memory.estimate_bytes(512, 512, "bf16") < small
    assert memory.estimate_bytes(512, 512, optimizer="adam") < small
    budget = 4 * memory.GB
    side = memory.largest_fitting_long_side(0.75, "fp32", "lbfgs", budget)
    assert memory.fits(side, round(side * 0.75), "fp32", "lbfgs", budget)
    assert not memory.fits(side + 1, round((side + 1) * 0.75), "fp32", "lbfgs", budget)


def test_too_large_is_refused_with_the_largest_size_that_fits(content_image, style_image):
    st = StyleTransfer(style_image, **TINY, size=4000, tile_size=0, max_memory_gb=2, precision="fp32")
    with pytest.raises(NeuralensError, match=r"largest size that fits is --size (\d+)") as info:
        st.run(content_image)
    largest = int(info.value.args[0].rsplit(" ", 1)[1])
    assert 300 < largest < 4000
    assert memory.fits(largest, round(largest * 0.75), "fp32", "lbfgs", 2 * memory.GB)


def test_auto_tiles_when_a_scale_does_not_fit(content_image, style_image, monkeypatch):
    # Shrink the world so the test stays tiny: no fixed cost, tiles from 32 px, a budget of ~20 MB in which
    # a 96x72 image (~27 MB) does not fit but a 64x64 tile (~16 MB) does.
    from neuralens.style import plan

    monkeypatch.setattr(memory, "BASE_BYTES", 0)
    monkeypatch.setattr(plan, "MIN_TILE", 32)
    calls = []
    st = StyleTransfer(style_image, **TINY, size=96, max_memory_gb=0.0235, tile_overlap=16, precision="bf16")
    tile = st.tile_for(96, 72)
    assert tile == 64
    assert st.tile_for(48, 36) is None
    result = st.run(content_image, callback=calls.append)
    assert result.image.size == (96, 72)
    assert len(result.history) == 2 * len(tiling.tile_boxes(72, 96, 64, 16)) == 8
    assert calls[-1].image().size == (96, 72)  # previews show the whole picture, not a tile


def test_forced_tiles_lower_each_tiles_loss_without_seams(content_image, style_image):
    st = StyleTransfer(
        style_image,
        **dict(TINY, iterations=6),
        size=96,
        tile_size=64,
        tile_overlap=16,
        style_layers="relu1_1,relu2_1,relu3_1",
        content_layers="relu2_2",
    )
    result = st.run(content_image)
    boxes = tiling.tile_boxes(72, 96, 64, 16)
    assert len(boxes) == 4 and len(result.history) == 6 * 4
    for i in range(4):
        losses = [h["loss"] for h in result.history[6 * i : 6 * (i + 1)]]
        assert min(losses[1:]) < losses[0]
    # No seam: the jump between neighbouring columns at the tiles' edges is no larger than elsewhere.
    import numpy as np

    a = np.asarray(result.image, dtype=np.float64)
    column_jumps = np.abs(np.diff(a, axis=1)).mean(axis=(0, 2))
    edges = [x1 - 1 for _, _, _, x1 in boxes if x1 < 96] + [x0 - 1 for _, _, x0, _ in boxes if x0 > 0]
    assert max(column_jumps[e] for e in edges) < np.percentile(column_jumps, 95) * 1.5


def test_bad_tile_options():
    from neuralens import StyleOptions

    with pytest.raises(NeuralensError, match="tile_size"):
        StyleOptions(tile_size=10).validate()
    with pytest.raises(NeuralensError, match="max_memory_gb"):
        StyleOptions(max_memory_gb=-1).validate()


def test_tiled_and_whole_optimisation_of_an_image_that_fits_agree(content_image, style_image):
    """The same photo optimised whole and in two tiles (the same evaluations per tile) ends at a similar
    objective of the whole image: measured 2.8e12 whole and 4.0e12 tiled from 5.6e13 at the photo itself,
    the pictures 7 levels apart on average (L-BFGS on other pixels takes other paths)."""
    import numpy as np

    from neuralens.imageio import image_to_tensor

    settings = dict(TINY, iterations=20, size=128, seed=0, precision="fp32", tile_overlap=32)
    whole = StyleTransfer(style_image, **settings)
    tiled = StyleTransfer(style_image, **settings, tile_size=96)
    a, b = whole.run(content_image).image, tiled.run(content_image).image
    assert len(tiling.tile_boxes(96, 128, 96, 32)) == 2
    objective = whole.objective(image_to_tensor(content_image.resize(a.size)))

    def loss(image) -> float:
        return float(objective(image_to_tensor(image))["total"])

    start, untiled, in_tiles = loss(content_image.resize(a.size)), loss(a), loss(b)
    assert in_tiles < start / 8 and untiled < start / 8
    assert in_tiles < 2.0 * untiled
    assert np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() < 20
