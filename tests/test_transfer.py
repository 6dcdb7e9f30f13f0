"""Style transfer and reconstruction: losses go down, seeds repeat, every option path runs."""

import sys

import numpy as np
import pytest
import torch

from neuralens import StyleOptions, StyleTransfer, reconstruct, stylize
from neuralens.errors import NeuralensError
from neuralens.style import Reporter, clamp_pixels, optimise, reconstruct_run, scale_iterations, scale_sizes

TINY = dict(size=48, iterations=8, progress=False, device="cpu", early_stop_patience=0)


def test_scale_sizes_grow_by_sqrt2_to_the_output():
    assert scale_sizes(512, None, 256) == [256, 362, 512]
    assert scale_sizes(512, 1, 256) == [512]
    assert scale_sizes(200, None, 256) == [200]
    assert scale_sizes(1024, 3, 256) == [512, 724, 1024]
    assert scale_sizes(384, None, 256) == [272, 384]
    # beyond 512 px the scales double: few slow passes
    assert scale_sizes(4000, None, 256) == [250, 354, 500, 1000, 2000, 4000]


def test_most_evaluations_go_to_the_512_px_scale_or_to_a_larger_output():
    assert scale_iterations([256, 362, 512]) == [20, 20, 75]
    assert scale_iterations([200]) == [75]
    # a larger output: 40 at 512 px, 10 at the scales between, and at the output 75 x (512/side)^2 (at least 10)
    # plus the 35 the 512-px scale gave up, at the same cost in pixels
    assert scale_iterations([256, 362, 512, 1024]) == [20, 20, 40, 19 + 8]
    assert scale_iterations([256, 362, 512, 1024, 2048]) == [20, 20, 40, 10, 10 + 2]
    assert scale_iterations([250, 354, 500, 1000, 2000, 4000]) == [20, 20, 40, 10, 10, 10]
    assert scale_iterations([256, 362, 512], 35) == [20, 20, 35]
    assert scale_iterations([256, 362, 512], 35, 5) == [5, 5, 35]
    assert scale_iterations([256, 362, 512, 1024], 30) == [20, 20, 40, 30]
    # the other scales' counts given: nothing is moved to the output scale
    assert scale_iterations([512, 724, 1024], None, 0) == [0, 0, 19]
    assert scale_iterations([1024, 1448, 2048]) == [19, 10, 10]  # no 512-px scale (--scales 3): none moved


def test_short_optimisation_lowers_the_loss(content_image, style_image):
    result = StyleTransfer(style_image, **TINY, scales=1).run(content_image)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 8
    assert min(losses[1:]) < losses[0]
    assert result.image.size == (48, 36)
    assert not result.stopped


def test_lbfgs_first_step_is_sized_to_the_pixels(content_image, style_image, monkeypatch):
    """L-BFGS's own first step (the pixels moved by 1 in total) left the loss flat for several evaluations;
    the sized one lowers it from the second evaluation, and every evaluation is still counted once."""
    import neuralens.style.optimise  # noqa: F401 - the module (the package exports the function of that name)

    optimise_module = sys.modules["neuralens.style.optimise"]

    def losses(first_step):
        monkeypatch.setattr(optimise_module, "FIRST_STEP", first_step)
        result = StyleTransfer(style_image, **dict(TINY, iterations=4), scales=1, init="noise", seed=1).run(
            content_image
        )
        return [h["loss"] for h in result.history]

    sized, unsized = losses(0.01), losses(1e-9)
    assert len(sized) == len(unsized) == 4
    assert sized[0] == unsized[0]
    assert sized[-1] < 0.9 * sized[0]
    assert sized[-1] < unsized[-1]


def test_clamp_pixels_lets_out_of_range_values_come_back():
    image = torch.tensor([-0.5, -0.5, 0.5, 1.5, 1.5], requires_grad=True)
    out = clamp_pixels(image)
    assert out.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    # d(loss)/d(out) = grad; descent moves against it. Below 0, a positive gradient would push further out
    # (blocked) while a negative one pulls back in (kept); above 1 the other way round.
    out.backward(torch.tensor([1.0, -1.0, 2.0, 1.0, -1.0]))
    assert image.grad.tolist() == [0.0, -1.0, 2.0, 1.0, 0.0]


def test_optimised_pixels_stay_in_range():
    """A target far outside [0, 1] pulls the pixels out; the result is the clamped image and its loss."""

    class Pull:
        def __call__(self, image):
            loss = (image - 2.0).pow(2).sum() + (image + 1.0).pow(2)[:, :1].sum()
            zero = torch.zeros(())
            return {"content": loss, "style": zero, "tv": zero, "total": loss}

    reporter = Reporter(total=10)
    start = torch.full((1, 3, 4, 4), 0.5)
    best, evals, stopped = optimise(Pull(), start, 10, StyleOptions(early_stop_patience=0), reporter, lambda t: None)
    history = reporter.history
    assert 0 <= float(best.min()) and float(best.max()) <= 1
    assert torch.allclose(best[:, 1:], torch.ones(1, 2, 4, 4))
    assert history[-1]["loss"] < history[0]["loss"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_precisions_and_layouts_agree(content_image, style_image, precision, channels_last):
    transfer = StyleTransfer(style_image, **TINY, precision=precision, channels_last=channels_last)
    objective = transfer.objective(
        transfer.network.to_device(torch.rand(1, 3, 36, 48, generator=torch.Generator().manual_seed(1)))
    )
    reference = StyleTransfer(style_image, **TINY, precision="fp32", channels_last=False)
    x = torch.rand(1, 3, 36, 48, generator=torch.Generator().manual_seed(2))
    ref_objective = reference.objective(torch.rand(1, 3, 36, 48, generator=torch.Generator().manual_seed(1)))
    got, want = objective(x)["total"].item(), ref_objective(x)["total"].item()
    tolerance = 1e-4 if precision == "fp32" else 0.1  # bf16 keeps 8 bits of mantissa
    assert got == pytest.approx(want, rel=tolerance)
    result = transfer.run(content_image)
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_same_seed_same_output(content_image, style_image):
    options = dict(TINY, init="noise", seed=7)
    a = np.asarray(stylize(content_image, style_image, **options))
    b = np.asarray(stylize(content_image, style_image, **options))
    c = np.asarray(stylize(content_image, style_image, **dict(options, seed=8)))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "extra",
    [
        dict(optimizer="adam", learning_rate=0.05),
        dict(init="noise"),
        dict(init="style"),
        dict(preserve_color="luminance"),
        dict(preserve_color="histogram"),
        dict(tv_weight=1.0, pooling="avg"),
        dict(scales=2, coarse_iterations=3),
        dict(content_layers="relu2_2", style_layers="relu1_1:0.7,relu2_1:0.3"),
    ],
)
def test_option_paths_lower_the_loss(content_image, style_image, extra):
    result = StyleTransfer(style_image, **dict(TINY, **extra)).run(content_image)
    last_scale = [h for h in result.history if h["scale"] == result.history[-1]["scale"]]
    assert min(h["loss"] for h in last_scale) < last_scale[0]["loss"]
    assert result.image.size == (48, 36)


def test_luminance_mode_keeps_the_content_colours(content_image, style_image):
    out = stylize(content_image, style_image, **TINY, preserve_color="luminance")

    # The colour (chroma) of the output equals the content's: compare the I/Q means of YIQ.
    def chroma(image):
        a = np.asarray(image, dtype=np.float64) / 255
        return np.array([a @ [0.596, -0.274, -0.322], a @ [0.211, -0.523, 0.312]]).mean(axis=(1, 2))

    assert np.allclose(chroma(out), chroma(content_image.resize(out.size)), atol=0.03)


def test_style_blend_is_a_weighted_gram_average(content_image, style_image):
    grey = style_image.convert("L").convert("RGB")
    both = StyleTransfer([style_image, grey], **TINY, style_blend=[3, 1])
    one = StyleTransfer(style_image, **TINY)
    other = StyleTransfer(grey, **TINY)
    assert both.targets.blend == [0.75, 0.25]
    g_both, g_one, g_other = both.style_grams(48), one.style_grams(48), other.style_grams(48)
    for layer in g_both:
        assert torch.allclose(g_both[layer], 0.75 * g_one[layer] + 0.25 * g_other[layer], rtol=1e-4, atol=1e-2)
    with pytest.raises(NeuralensError, match="2 weights for 1"):
        StyleTransfer(style_image, **TINY, style_blend=[1, 2])


def test_multi_scale_runs_coarse_to_fine(content_image, style_image):
    result = StyleTransfer(style_image, **dict(TINY, size=64), min_scale_size=32, coarse_iterations=2).run(
        content_image
    )
    sizes = [tuple(h["size"]) for h in result.history]
    assert sizes[0] == (32, 24) and sizes[-1] == (64, 48)
    assert len(set(sizes)) == 3  # 32, 45, 64


def test_stop_request_returns_the_current_image(content_image, style_image):
    calls = []
    result = StyleTransfer(style_image, **dict(TINY, iterations=50)).run(
        content_image, callback=calls.append, should_stop=lambda: len(calls) >= 3
    )
    assert result.stopped and len(result.history) == 3
    assert result.image.size == (48, 36)
    assert calls[-1].image().size == (48, 36)


def test_early_stopping_ends_a_flat_run(content_image):
    # Reconstructing the content from itself starts at zero loss: nothing improves, so it stops early.
    result = StyleTransfer(
        content_image, **dict(TINY, iterations=100, style_weight=0, early_stop_patience=5, scales=1)
    ).run(content_image)
    assert len(result.history) < 100


@pytest.mark.parametrize("kwargs", [dict(content_layer="relu2_2"), dict(style_layers="relu1_1,relu2_1")])
def test_reconstruct_lowers_its_loss(content_image, kwargs):
    result = reconstruct_run(content_image, **kwargs, size=32, iterations=15, progress=False)
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    assert reconstruct(content_image, **kwargs, size=32, iterations=2, progress=False).size == (32, 24)


def test_reconstruct_needs_exactly_one_target(content_image):
    with pytest.raises(NeuralensError, match="either"):
        reconstruct(content_image, size=32)
    with pytest.raises(NeuralensError, match="either"):
        reconstruct(content_image, content_layer="relu1_1", style_layers="relu1_1", size=32)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("size", 0, "size"),
        ("size", -5, "size"),
        ("style_weight", -1.0, "style_weight"),
        ("content_weight", float("nan"), "content_weight"),
        ("iterations", 0, "iterations"),
        ("style_layers", "relu1_1,bogus", "unknown layer"),
        ("optimizer", "sgd", "optimizer"),
        ("preserve_color", "sepia", "preserve_color"),
        ("precision", "fp8", "precision"),
        ("init", "no-such-file.png", "init must be"),
    ],
)
def test_bad_options(field, value, message):
    with pytest.raises(NeuralensError, match=message):
        StyleOptions(**{field: value}).validate()
