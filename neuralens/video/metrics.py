"""Flicker, measured as the warping error of Lai et al. 2018 ("Learning blind video temporal consistency"):

    E_warp(O_t, O_t+1) = 1 / sum_x M_t(x) * sum_x M_t(x) |O_t(x) - warp(O_t+1)(x)|^2

the squared RGB difference (values in [0, 1], summed over the channels) between each output frame and the next
output frame warped back onto it, averaged over the pixels where the flow is reliable (M: not occluded). The flow
and the mask come from the *input* frames, so a video that moves exactly with its content scores 0; the input's
own error (its interpolation and occlusion leftovers) is the floor. The video's E_warp is the mean over pairs.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from .flow import FlowEstimator, FlowField


def pair_error(current: np.ndarray, following: np.ndarray, field: FlowField) -> float:
    """E_warp of one pair: ``current`` and ``following`` (H, W, 3) in [0, 1] (float) or uint8, ``field`` the
    masked flow of the input frame of ``current`` towards the input frame of ``following``."""
    a = _float(current)
    warped = field.warp(_float(following))
    weight = field.mask
    total = float(weight.sum())
    if total <= 0:
        return 0.0
    return float((((a - warped) ** 2).sum(-1) * weight).sum() / total)


def warping_error(outputs: Sequence[np.ndarray], fields: Sequence[FlowField]) -> float:
    """The mean E_warp over consecutive ``outputs``; ``fields[t]`` is the flow of input frame t towards t+1."""
    errors = pair_errors(outputs, fields)
    return float(np.mean(errors)) if errors else 0.0


def pair_errors(outputs: Sequence[np.ndarray], fields: Sequence[FlowField]) -> List[float]:
    """E_warp of every consecutive pair of ``outputs``."""
    if len(fields) < len(outputs) - 1:
        raise ValueError(f"{len(outputs)} frames need {len(outputs) - 1} flows, got {len(fields)}")
    return [pair_error(outputs[t], outputs[t + 1], fields[t]) for t in range(len(outputs) - 1)]


def input_flows(inputs: Sequence[np.ndarray], estimator: Optional[FlowEstimator] = None) -> List[FlowField]:
    """The masked flows of each input frame (H, W, 3) uint8 towards the next, for measuring (DIS 'medium' and no
    cache unless ``estimator`` says otherwise)."""
    estimator = estimator or FlowEstimator("medium", cache_dir=None)
    return [estimator.between(inputs[t], inputs[t + 1]) for t in range(len(inputs) - 1)]


def _float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
