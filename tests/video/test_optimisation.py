"""The optimisation engine on video (one tiny run) and the Objective's extra-term hook it uses."""

import numpy as np
import pytest
import torch

from neuralens import video
from neuralens.style import objective as objective_module
from neuralens.style import transfer as transfer_module
from neuralens.style.transfer import StyleTransfer


def test_extra_terms_add_to_the_total_and_are_absent_by_default(style_image, content_image):
    transfer = StyleTransfer(style_image, size=48, progress=False)
    content = torch.rand(1, 3, 32, 48)
    plain = transfer.objective(content)(content)
    assert list(plain) == ["content", "style", "tv", "total"]
    base = float(plain["total"])
    extra = transfer.objective(
        content, extra_terms=lambda shape, box: {"temporal": lambda image: image.sum() * 0 + base}
    )
    losses = extra(content)
    assert float(losses["temporal"]) == pytest.approx(base)
    assert float(losses["total"]) == pytest.approx(2 * base, rel=1e-5)


def test_optimisation_video_starts_from_the_warped_previous_result_with_a_temporal_loss(pan, image_files, monkeypatch):
    frames, _ = pan
    seen = []

    class Spy(objective_module.Objective):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(sorted(self.extra_terms))

    monkeypatch.setattr(transfer_module, "Objective", Spy)
    _, style = image_files
    out = list(
        video.stylize_frames(
            frames[:3], styles=[style], iterations=3, scales=1, frame_iterations=2, early_stop_patience=0
        )
    )
    assert len(out) == 3 and out[0].size == (64, 48)
    # The first frame runs the plain objective (and once more to weigh the temporal loss); the others add it.
    assert seen[0] == [] and seen.count(["temporal"]) == 2 and seen[-1] == ["temporal"]
    assert not np.array_equal(np.asarray(out[1]), np.asarray(out[2]))
