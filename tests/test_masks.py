"""Spatial control (guided Gram matrices) and scale control (fine layers from a second style)."""

import numpy as np
import pytest
import torch
from PIL import Image

from neuralens import StyleTransfer
from neuralens.errors import NeuralensError

# Shallow layers only: the test is about where the style goes, and they make it fast.
TINY = dict(
    size=64,
    iterations=12,
    progress=False,
    device="cpu",
    early_stop_patience=0,
    scales=1,
    style_weight=1e5,
    content_layers="relu2_2",
    style_layers="relu1_1,relu2_1,relu3_1",
)


def _half_mask(size, soft=False) -> Image.Image:
    w, h = size
    a = np.zeros((h, w), dtype=np.uint8)
    a[:, : w // 2] = 255
    if soft:
        a = np.tile(np.linspace(255, 0, w).astype(np.uint8), (h, 1))
    return Image.fromarray(a, "L")


def _halves(image: Image.Image):
    a = np.asarray(image, dtype=np.float64) / 255
    w = a.shape[1]
    return a[:, : w // 2 - 4], a[:, w // 2 + 4 :]


def test_half_mask_stylizes_only_its_half(content_image, style_image):
    content = content_image.resize((64, 48))
    plain = StyleTransfer(style_image, **TINY).run(content).image
    masked = StyleTransfer(style_image, **TINY, style_masks=[_half_mask((64, 48))]).run(content).image
    c_left, c_right = _halves(content)
    m_left, m_right = _halves(masked)
    p_left, _ = _halves(plain)
    # The masked half changes as much as with no mask at all; the other half stays (nearly) the photo.
    left_change = np.abs(m_left - c_left).mean()
    right_change = np.abs(m_right - c_right).mean()
    assert left_change > 0.5 * np.abs(p_left - c_left).mean()
    assert right_change < 0.35 * left_change


def test_content_mask_keeps_the_black_region(content_image, style_image):
    content = content_image.resize((64, 48))
    out = StyleTransfer(style_image, **TINY, content_mask=_half_mask((64, 48))).run(content).image
    (c_left, c_right), (o_left, o_right) = _halves(content), _halves(out)
    assert np.abs(o_right - c_right).mean() < 0.35 * np.abs(o_left - c_left).mean()


def test_two_styles_two_regions_and_soft_masks(content_image, style_image):
    grey = style_image.convert("L").convert("RGB")
    left = _half_mask((64, 48))
    right = Image.eval(left, lambda v: 255 - v)
    st = StyleTransfer([style_image, grey], **dict(TINY, iterations=4), style_masks=[left, right])
    guides = st.targets.regions(48, 64)
    assert len(guides) == 2 and torch.allclose(guides[0] + guides[1], torch.ones(1, 1, 48, 64))
    assert st.run(content_image).image.size == (64, 48)
    soft = StyleTransfer(style_image, **dict(TINY, iterations=4), style_masks=[_half_mask((64, 48), soft=True)])
    g = soft.targets.regions(48, 64)[0][0, 0]
    assert 0.3 < g[:, 32].mean() < 0.7 and (g[:, 1:] <= g[:, :-1] + 1e-6).all()  # a smooth ramp


def test_mask_of_another_size_is_resized(content_image, style_image):
    st = StyleTransfer(style_image, **dict(TINY, iterations=2), style_masks=[_half_mask((20, 10))])
    g = st.targets.regions(48, 64)[0]
    assert g.shape == (1, 1, 48, 64)
    assert g[0, 0, :, :28].min() > 0.9 and g[0, 0, :, 36:].max() < 0.1


def test_bad_masks(tmp_path, style_image):
    (tmp_path / "notes.png").write_text("no image")
    with pytest.raises(NeuralensError, match="not an image"):
        StyleTransfer(style_image, **TINY, style_masks=[tmp_path / "notes.png"])
    Image.new("L", (8, 8), 0).save(tmp_path / "black.png")
    with pytest.raises(NeuralensError, match="empty"):
        StyleTransfer(style_image, **TINY, content_mask=tmp_path / "black.png")
    with pytest.raises(NeuralensError, match="2 style masks for 1"):
        StyleTransfer(style_image, **TINY, style_masks=[tmp_path / "black.png"] * 2)


def test_fine_layers_come_from_the_fine_style(style_image, content_image):
    st = StyleTransfer(style_image, **TINY, fine_style=content_image, fine_layers="relu1_1")
    only_style = StyleTransfer(style_image, **TINY)
    only_fine = StyleTransfer(content_image, **TINY)
    grams, g_style, g_fine = st.style_grams(48), only_style.style_grams(48), only_fine.style_grams(48)
    assert torch.allclose(grams["relu1_1"], g_fine["relu1_1"])
    assert torch.allclose(grams["relu3_1"], g_style["relu3_1"])
    with pytest.raises(NeuralensError, match="not among the style layers"):
        StyleTransfer(style_image, **TINY, fine_style=content_image, fine_layers="relu4_2")
