"""Training a feed-forward style network for one painting (Johnson, Alahi & Fei-Fei 2016).

The image transformation network (``network.py``: ``ShuffleNet`` or Johnson's ``TransformerNet``) learns to
minimise, over random crops of many photos, the same perceptual objective that `stylize` optimises pixel by
pixel for one photo:

    alpha * L_content(relu2_2) + beta * sum_l w_l E_l(Gram) + tv * TV

with the project's frozen VGG19 as the loss network and the loss functions of ``neuralens.style.losses``
(one implementation). The painting's Gram matrices are computed once, at the start. Both losses are averaged
over the crops of a batch.

    from neuralens.fast.training import train
    result = train("starry_night.jpg", "photos/", "starry-night.pt", minutes=60)
    result.model_path, result.images_per_second, result.final_losses

Files written beside OUTPUT (a ``.pt`` model file, see ``model.py``): OUTPUT_STEM.json (the training
report), OUTPUT_STEM.loss.png (the loss curve), OUTPUT_STEM.preview.png (held-out photos, photo | stylized,
refreshed every ``preview_every`` seconds) and OUTPUT_STEM.checkpoint.pt (network, Adam state, step, random
state and history: ``resume=`` continues from it exactly as if training had not stopped).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from PIL import Image

from .. import __version__, devices
from ..errors import NeuralensError
from ..imageio import ImageLike, check_writable_folder, image_to_tensor, load_image, resize_long_side
from . import loop
from . import preview as previews
from .loop import LoopState
from .loss import DistillationLoss, LossNetwork
from .model import MODEL_SUFFIX, StyleModel, load_model
from .network import build_network, parameter_count
from .options import TrainOptions
from .photos import MAX_HELD_OUT, Photos, held_out_indices, holdout_folder_indices, load_photos

CHECKPOINT_FORMAT = "neuralens-fast-checkpoint"
CHECKPOINT_VERSION = 1
# Settings a resumed run takes from its caller (train-style and train-decoder alike); the others come from the
# checkpoint.
RESUMABLE = ("minutes", "iterations", "checkpoint_every", "preview_every", "device", "precision", "progress")


@dataclass
class TrainResult:
    """What a training run did and wrote."""

    model_path: Path
    iterations: int  # steps done in total (including those before a resume)
    seconds: float  # training time in total (including before a resume)
    images_per_second: float  # crops per second in this run
    final_losses: Dict[str, float]  # average of the last steps: content, style, tv, total (weighted)
    history: List[Dict[str, float]]  # every loop.HISTORY_EVERY steps: iteration, seconds and the losses
    stopped: bool = False  # stopped early by Ctrl-C or should_stop() (the model is saved all the same)
    blew_up_at: Optional[int] = None  # step where the loss rose far above its lowest (loop.BLOWUP), if it did
    preview_files: List[Path] = field(default_factory=list)
    report_path: Optional[Path] = None
    loss_plot_path: Optional[Path] = None
    checkpoint_path: Optional[Path] = None
    skipped: List[str] = field(default_factory=list)  # photos that could not be read, with the reason
    held_out: List[str] = field(default_factory=list)  # photos kept out of training for the preview
    photos: int = 0  # photos trained on

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
        out["preview_files"] = [str(p) for p in self.preview_files]
        return out


def output_files(output: Union[str, os.PathLike]) -> Dict[str, Path]:
    """The files a training run writes for the model file ``output``: model, report, loss, preview, checkpoint."""
    output = Path(output)
    stem = output.with_suffix("")
    return {
        "model": output,
        "report": output.with_suffix(".json"),
        "loss": Path(f"{stem}.loss.png"),
        "preview": Path(f"{stem}.preview.png"),
        "checkpoint": Path(f"{stem}.checkpoint.pt"),
    }


def check_output(output: Union[str, os.PathLike]) -> Path:
    """Check that a model can be written at ``output`` (a ``.pt`` name in a writable folder), before any work."""
    output = Path(output)
    if output.is_dir():
        raise NeuralensError(f"{output}: is a folder, not a file name")
    if output.suffix.lower() != MODEL_SUFFIX:
        raise NeuralensError(f"{output}: a style model is a {MODEL_SUFFIX} file (e.g. {output.stem}{MODEL_SUFFIX})")
    check_writable_folder(output.parent)
    return output


def style_name(style: ImageLike) -> str:
    """The model's name from the painting's file name: 'starry_night.jpg' -> 'starry-night'."""
    stem = Path(style).stem if not isinstance(style, Image.Image) else "style"
    return "-".join(part for part in stem.replace("_", "-").replace(" ", "-").lower().split("-") if part) or "style"


# ------------------------------------------------------------------------------------------------- train


def machine(device: torch.device, precision: str) -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "neuralens": __version__,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "precision": precision,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def read_checkpoint(
    path: Union[str, os.PathLike], kind: str = CHECKPOINT_FORMAT, version: int = CHECKPOINT_VERSION
) -> dict:
    """The contents of a training checkpoint of format ``kind`` (train-style's by default; train-decoder passes
    its own); NeuralensError (one line) for a missing, corrupt, foreign or newer file."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NeuralensError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # a truncated or foreign file
        raise NeuralensError(f"{path}: not a readable training checkpoint ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != kind:
        raise NeuralensError(f"{path}: not a neuralens training checkpoint of this kind ({kind})")
    if data.get("version", 0) > version:
        raise NeuralensError(f"{path}: written by a newer neuralens; upgrade neuralens")
    return data


_read_checkpoint = read_checkpoint


def save_atomic(payload: Any, path: Path) -> Path:
    """``torch.save`` (any object) or, for a str, the text, into ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(payload, str):
        tmp.write_text(payload)
    else:
        torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def options_from(cls: Any, options: Any, fields: Dict[str, Any]) -> Any:
    """``options`` (an instance of the options dataclass ``cls``, or None for its defaults) with ``fields``
    replaced, validated. TypeError for a field ``cls`` does not have."""
    if options is None:
        options = cls()
    if fields:
        unknown = set(fields) - set(dataclasses.asdict(options))
        if unknown:
            raise TypeError(f"train() got unknown options: {', '.join(sorted(unknown))}")
        options = dataclasses.replace(options, **fields)
    return options.validate()


def _options_from(options: Optional[TrainOptions], fields: Dict[str, Any]) -> TrainOptions:
    return options_from(TrainOptions, options, fields)


def starting_network(options: TrainOptions) -> torch.nn.Module:
    """The network training starts from: random weights, or those of the model ``options.init`` (of its
    architecture and width; a --width that differs is an error)."""
    if options.init is None:
        return build_network(options.architecture, options.width)
    start = load_model(options.init, "cpu", "fp32").network
    if options.width is not None and options.width != start.width:
        raise NeuralensError(f"--init {options.init}: its width is {start.width}, not {options.width}")
    network = build_network(start.architecture, start.width)
    network.load_state_dict(start.state_dict())
    return network


def train(
    style: ImageLike,
    photos,
    output: Union[str, os.PathLike],
    options: Optional[TrainOptions] = None,
    resume: Optional[Union[str, os.PathLike]] = None,
    callback: Optional[Callable[[dict], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    command: Optional[str] = None,
    **fields: Any,
) -> TrainResult:
    """Train a style network for the painting ``style`` on ``photos`` (a folder, searched recursively, files or
    patterns) and save it at ``output`` (.pt); returns a TrainResult. Settings: ``options`` and/or TrainOptions
    fields as keywords (``minutes=5``). ``resume``: a checkpoint to continue from (its settings are used;
    ``minutes`` and ``iterations`` may be changed). ``callback(status)`` is called after each step with a dict
    (iteration, seconds, losses); ``should_stop()`` returning True, or Ctrl-C, ends training early: the model,
    a checkpoint and the report are still written and ``stopped`` is True. Unreadable photos are skipped with
    one warning listing them (also in ``skipped``)."""
    started = time.perf_counter()
    options = _options_from(options, fields)
    checkpoint = None
    if resume is not None:
        checkpoint = _read_checkpoint(resume)
        saved = dict(checkpoint["options"])
        saved.setdefault("architecture", "johnson")  # checkpoints from before ShuffleNet
        for key in RESUMABLE:
            saved[key] = getattr(options, key)
        options = TrainOptions(**{k: v for k, v in saved.items() if k in TrainOptions.__dataclass_fields__})
        options.validate()
    files = output_files(check_output(output))

    painting = load_image(style)
    paths, images, skipped = load_photos(photos, options.size)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable photo(s): " + "; ".join(skipped), stacklevel=2)
    held = holdout_folder_indices(photos, paths) or held_out_indices(len(images))
    if len(held) >= len(images):
        held = []
    train_images = [im for i, im in enumerate(images) if i not in held]
    preview_images = [images[i] for i in held][:MAX_HELD_OUT] or train_images[:2]

    device = devices.pick_device(options.device)
    precision = devices.pick_precision(options.precision, device)
    devices.configure_threads()
    channels_last = (precision == "bf16" or device.type == "cuda") and device.type != "mps"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    torch.manual_seed(options.seed)  # the network's starting weights
    network = starting_network(options).to(device, memory_format=memory_format)
    options = dataclasses.replace(options, architecture=network.architecture, width=network.width)
    optimizer = torch.optim.Adam(network.parameters(), lr=options.learning_rate)
    data = Photos(train_images, options.size, options.seed)
    if options.teacher is not None:
        losses = DistillationLoss(load_model(options.teacher, "cpu", "fp32").network, device)
    else:
        losses = LossNetwork(options, device, precision, memory_format)
        losses.set_style(image_to_tensor(resize_long_side(painting, options.style_size)))

    state = LoopState()
    if checkpoint is not None:
        network.load_state_dict(checkpoint["network"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        data.generator.set_state(checkpoint["generator"])
        state.step, state.seconds_before = int(checkpoint["iteration"]), float(checkpoint["seconds"])
        state.history = [dict(h) for h in checkpoint["history"]]
        state.restore_watch(checkpoint.get("watch"))

    preview_files: List[Path] = []
    name = style_name(style)

    def save_checkpoint() -> Path:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "options": options.to_dict(),
            "network": {k: v.detach().cpu() for k, v in network.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "generator": data.generator.get_state(),
            "iteration": state.step,
            "seconds": state.seconds,
            "history": state.history,
            "watch": state.watch_state(),
        }
        return save_atomic(payload, files["checkpoint"])

    def write_preview(net, on: torch.device, prec: str, fmt, title: str) -> None:
        sheet = previews.preview_sheet(net, preview_images, options.size, on, prec, fmt, title=title)
        path = previews.save_png(sheet, files["preview"])
        if path not in preview_files:
            preview_files.append(path)

    def preview_while_training() -> None:
        network.eval()
        where = "held-out" if held else "training"
        write_preview(network, device, precision, memory_format, f"{name}: step {state.step}, {where} photos")
        network.train()

    def one_step() -> Tuple[Dict[str, float], int]:
        batch = data.batch(options.batch_size).to(device).contiguous(memory_format=memory_format)
        optimizer.zero_grad(set_to_none=True)
        with devices.autocast(device, precision):
            stylized = network(batch)
        terms = losses(batch, stylized.float())
        terms["total"].backward()
        optimizer.step()
        return {k: float(v.detach()) for k, v in terms.items()}, batch.shape[0]

    network.train()
    setup_seconds = time.perf_counter() - started
    loop.run(state, one_step, options, "train-style", save_checkpoint, preview_while_training, callback, should_stop)
    step, stopped, checkpoint_path = state.step, state.stopped, state.checkpoint_path
    rate, final, curve = state.images_per_second, state.final_losses(), state.curve()
    info = {
        "name": name,
        "painting": Path(style).name if not isinstance(style, Image.Image) else None,
        "options": options.to_dict(),
        "iterations": step,
        "seconds": round(state.seconds, 1),
        "images_per_second": round(rate, 3),
        "final_losses": final,
        "photos": len(train_images),
        "parameters": parameter_count(network),
        "architecture": network.architecture,
        "width": network.width,
        "machine": machine(device, precision),
        "command": command,
        "stopped": stopped,
        "loss_blew_up_at": state.blew_up_at,
    }
    model = StyleModel(network.float().to(memory_format=torch.contiguous_format), info, files["model"], "cpu", "fp32")
    model.save(files["model"])
    if preview_images:
        write_preview(model.network, torch.device("cpu"), "fp32", torch.contiguous_format, f"{name}: step {step}")
    loss_plot = previews.save_png(previews.loss_plot(curve, options, title=f"{name}: training loss"), files["loss"])
    result = TrainResult(
        model_path=files["model"],
        iterations=step,
        seconds=state.seconds,
        images_per_second=rate,
        final_losses=final,
        history=curve,
        stopped=stopped,
        blew_up_at=state.blew_up_at,
        preview_files=preview_files,
        report_path=files["report"],
        loss_plot_path=loss_plot,
        checkpoint_path=checkpoint_path,
        skipped=skipped,
        held_out=[str(paths[i]) for i in held],
        photos=len(train_images),
    )
    report = {
        "neuralens": __version__,
        "style": str(style) if not isinstance(style, Image.Image) else None,
        "photos": str(photos) if isinstance(photos, (str, os.PathLike)) else [str(p) for p in photos],
        "command": command,
        "settings": options.to_dict(),
        "resumed_from": str(resume) if resume else None,
        "setup_seconds": round(setup_seconds, 2),
        "machine": info["machine"],
        "result": result.to_dict(),
    }
    save_atomic(json.dumps(report, indent=1, default=str), files["report"])
    return result
