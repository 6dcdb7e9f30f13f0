"""Warping, the reliability mask and the flow cache."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuralens.video.flow import FlowEstimator, FlowField, reliable_mask, synthetic_shift, warp
from neuralens.video.metrics import pair_error, warping_error
from neuralens.video.synthetic import object_clip, pan_clip

SAMPLES = Path(__file__).resolve().parents[2] / "neuralens" / "samples"


def test_warp_with_a_known_flow_moves_a_pattern_by_exactly_that_flow():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    flow = synthetic_shift((48, 64), 5, -3)  # out(x, y) = image(x + 5, y - 3)
    out = warp(image, flow)
    assert np.array_equal(out[3:, :-5], image[:-3, 5:])
    # A float image and a fractional flow: halfway between two pixels is their mean.
    ramp = np.tile(np.arange(64, dtype=np.float32), (48, 1))[..., None]
    half = warp(ramp, synthetic_shift((48, 64), 0.5, 0))
    assert np.allclose(half[:, :-1, 0], ramp[:, :-1, 0] + 0.5)


def test_the_mask_marks_a_disoccluded_band():
    # A square moves 6 px right over a still background: in the second frame a 6-px band behind it is newly seen.
    h, w = 48, 64
    backward = np.zeros((h, w, 2), np.float32)  # second frame -> first
    forward = np.zeros((h, w, 2), np.float32)  # first frame -> second
    forward[16:32, 20:36, 0] = 6  # the square in the first frame moves right
    backward[16:32, 26:42, 0] = -6  # the square in the second frame came from the left
    mask = reliable_mask(backward, forward)
    band = mask[18:30, 21:25]  # behind the square, well inside the band 20..25: background seen for the first time
    assert band.max() == 0
    assert mask[18:30, 29:40].min() == 1  # the square itself is matched
    assert mask[2:10, 2:60].min() == 1  # still background far from it is matched


def test_dis_flow_and_mask_on_a_synthetic_pan(pan):
    frames, truth = pan
    estimator = FlowEstimator("medium", cache_dir=None)
    field = estimator.between(frames[5], frames[6])
    inner = field.mask[8:-8, 8:-8] > 0
    assert inner.mean() > 0.9
    error = np.abs(field.flow[8:-8, 8:-8][inner] - truth[5].flow[8:-8, 8:-8][inner]).mean()
    assert error < 0.5
    assert field.mask[:, :2].max() == 0  # these pixels leave the frame (the content moves left)


def test_flows_are_cached_by_content(tmp_path):
    frames, _ = pan_clip(np.random.default_rng(1).integers(0, 256, (80, 120, 3), dtype=np.uint8), (64, 48), 3)
    first = FlowEstimator("fast", cache_dir=tmp_path)
    a = first.between(frames[1], frames[0])
    assert first.stats["computed"] == 1 and list(tmp_path.glob("*/*.npz"))
    again = FlowEstimator("fast", cache_dir=tmp_path)
    b = again.between(frames[1].copy(), frames[0].copy())
    assert again.stats == {"computed": 0, "cached": 1, "seconds": 0.0}
    assert np.allclose(a.flow, b.flow, atol=1 / 16) and np.array_equal(a.mask, b.mask)
    other = FlowEstimator("medium", cache_dir=tmp_path)  # another preset is another key
    other.between(frames[1], frames[0])
    assert other.stats["computed"] == 1


def test_warping_error_is_zero_for_content_that_moves_with_the_true_flow(photo):
    frames, truth = object_clip(np.asarray(photo)[:48, :64], np.asarray(photo)[60:76, 80:100], 6)
    assert warping_error(frames, truth) == pytest.approx(0.0, abs=1e-9)
    shuffled = [frames[0], frames[3], frames[1], frames[5], frames[2], frames[4]]
    assert warping_error(shuffled, truth) > 1e-3
    empty = FlowField(truth[0].flow, np.zeros_like(truth[0].mask))
    assert pair_error(frames[0], frames[1], empty) == 0.0


@pytest.fixture(scope="module")
def wide_pan():
    """A 160x120 pan (3 px right, 1 px down a frame): phase correlation needs frames of this size (on 64x48
    ones it reads 2.7 px for 3)."""
    big = Image.open(SAMPLES / "tubingen.jpg").convert("RGB").resize((256, 192), Image.LANCZOS)
    return pan_clip(big, (160, 120), 6, (3, 1))[0], big


def test_global_shift_follows_a_pan_and_ignores_a_still_background(wide_pan):
    from neuralens.video.consistency import global_shift

    frames, big = wide_pan
    assert np.allclose(global_shift(frames[0], frames[1]), (-3, -1), atol=0.05)  # the content moves by -step
    still, _ = object_clip(big, np.asarray(big)[:24, :24], 3)
    assert np.array_equal(global_shift(still[0], still[1]), (0, 0))  # a small thing moving over a still picture


class _PaddingRecorder:
    """A stand-in engine of texture period 4 that returns the frame and records how it was padded."""

    phase = 4

    def __init__(self):
        self.pads = []

    def stylize(self, rgb):
        self.pads.append((rgb.shape[1] - 160, rgb.shape[0] - 120))  # the frames are 160x120
        return rgb.astype(np.float32) / 255


def test_a_pan_is_painted_in_step_with_the_first_frame(wide_pan):
    """Each frame is padded on the left and top by the pan so far, modulo the engine's texture period, so content
    the pan brings in is painted with the texture where the first frame had it; the result keeps the size."""
    from neuralens.video.consistency import FlowBlend

    frames, _ = wide_pan
    engine = _PaddingRecorder()
    temporal = FlowBlend(engine, FlowEstimator("fast", cache_dir=None))
    for rgb in frames[:5]:
        assert temporal.next(rgb).shape == (120, 160, 3)
    # 3 px right and 1 down a frame: in step again every 4 frames
    assert engine.pads == [(0, 0), (3, 1), (2, 2), (1, 3), (0, 0)]
