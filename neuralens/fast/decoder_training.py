"""Training the AdaIN decoder (Huang & Belongie 2017) on photos and paintings: `neuralens train-decoder`.

Each step takes a batch of random photo crops c and as many painting crops s, and with the frozen encoder f
(VGG19 to relu4_1) and the decoder g:

    t = AdaIN(f(c), f(s));   loss = ||f(g(t)) - t||^2 + lambda * sum_l (||mu(phi_l(g(t))) - mu(phi_l(s))||^2
                                                                    + ||sigma(phi_l(g(t))) - sigma(phi_l(s))||^2)

over l = relu1_1, relu2_1, relu3_1, relu4_1, each term a mean squared error (as the authors' code has it) of
features divided by the layer's typical activation (``adain.LAYER_SCALE``: the layers then weigh as with the
paper's normalised VGG19, and lambda = 10 means what it means there). With ``reconstruction_weight`` w > 0 the
decoder also decodes the photos' own features in the same pass and the loss adds w * ||g(f(c)) - c||^2 (pixels):
a direct lesson in inverting the encoder, which the feature losses alone teach slowly (docs/arbitrary.md). The
painting side enters only through its channel statistics, so ``style_pool`` crops' statistics are computed once at
the start and drawn from at each step: that saves one of the four encoder passes of a step.

Augmentation (``photos.Photos``): random crops whose side is drawn between ``size`` and ``zoom * size`` pixels,
resized to ``size`` (random scale), and random horizontal flips, for photos and paintings alike.

Files written beside OUTPUT (.pt), as `train-style` writes them: OUTPUT_STEM.json (report), OUTPUT_STEM.loss.png,
OUTPUT_STEM.preview.png (held-out photos x paintings, held-out paintings first) and OUTPUT_STEM.checkpoint.pt
(decoder, Adam state, step, random states, history: ``resume=`` continues exactly as if training had not stopped).
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from PIL import Image

from .. import __version__, devices
from . import loop
from . import preview as previews
from .adain import ADAIN_LAYER, LAYER_SCALE, STYLE_LAYERS, Decoder, Encoder, adain, mean_std
from .arbitrary import ArbitraryModel, save_decoder
from .decoder_options import LOSS_WEIGHTS, DecoderTrainOptions
from .loop import LoopState
from .network import parameter_count
from .photos import MAX_HELD_OUT, Photos, held_out_indices, holdout_folder_indices, load_photos
from .training import (
    RESUMABLE,
    TrainResult,
    check_output,
    machine,
    options_from,
    output_files,
    read_checkpoint,
    save_atomic,
)

CHECKPOINT_FORMAT = "neuralens-decoder-checkpoint"
CHECKPOINT_VERSION = 1
MAX_PREVIEW_PAINTINGS = 3
PREVIEW_SIZE = 192  # long side of the preview tiles (the crops themselves are small)

Stats = Dict[str, Tuple[torch.Tensor, torch.Tensor]]


@dataclass
class DecoderTrainResult(TrainResult):
    """What a decoder training run did and wrote (``TrainResult``'s fields, and the paintings)."""

    paintings: int = 0  # paintings trained on
    held_out_paintings: List[str] = field(default_factory=list)  # kept out of training (shown in the preview)


def style_loss(features: Dict[str, torch.Tensor], style: Stats) -> torch.Tensor:
    """The style term: squared errors of the channel means and deviations of ``features`` ({layer: (N, C, H, W)},
    STYLE_LAYERS) against ``style`` ({layer: (mean, std)}), each layer scaled by its typical activation."""
    return sum(
        (F.mse_loss(mean, style[k][0]) + F.mse_loss(std, style[k][1])) / LAYER_SCALE[k] ** 2
        for k, (mean, std) in ((k, mean_std(features[k])) for k in STYLE_LAYERS)
    )


class DecoderLoss:
    """The frozen encoder and the loss of a batch: content (relu4_1 against the AdaIN target), style (channel
    means and deviations at STYLE_LAYERS against the paintings') and, when weighted, the photos' reconstruction."""

    def __init__(self, options: DecoderTrainOptions, device: torch.device, precision: str, memory_format):
        self.options = options
        self.device, self.precision, self.memory_format = device, precision, memory_format
        self.encoder = Encoder(None, device, memory_format == torch.channels_last)

    def features(self, images: torch.Tensor, layers=STYLE_LAYERS) -> Dict[str, torch.Tensor]:
        with devices.autocast(self.device, self.precision):
            out = self.encoder(images.contiguous(memory_format=self.memory_format), layers)
        return {k: v.float() for k, v in out.items()}

    @torch.no_grad()
    def style_stats(self, paintings: torch.Tensor) -> Stats:
        """{layer: (mean, std)}, each (B, C, 1, 1), of painting crops (B, 3, S, S) in [0, 1]."""
        return {k: mean_std(v) for k, v in self.features(paintings.to(self.device)).items()}

    def __call__(self, decoder: Decoder, photos: torch.Tensor, style: Stats) -> Dict[str, torch.Tensor]:
        """The losses of one batch (fp32 scalars): content, style, reconstruction (only when weighted) and the
        weighted total."""
        o = self.options
        with torch.no_grad():
            content_features = self.features(photos, [ADAIN_LAYER])[ADAIN_LAYER]
            target = adain(content_features, *style[ADAIN_LAYER])
        decoded = torch.cat([target, content_features]) if o.reconstruction_weight else target
        with devices.autocast(self.device, self.precision):
            out = decoder(decoded.contiguous(memory_format=self.memory_format)).float()
        images = out[: len(target)]
        feats = self.features(images)
        content = F.mse_loss(feats[ADAIN_LAYER], target) / LAYER_SCALE[ADAIN_LAYER] ** 2
        style = style_loss(feats, style)
        terms = {"content": content, "style": style, "total": o.content_weight * content + o.style_weight * style}
        if o.reconstruction_weight:
            terms["reconstruction"] = F.mse_loss(out[len(target) :], photos.float())
            terms["total"] = terms["total"] + o.reconstruction_weight * terms["reconstruction"]
        return terms


class StylePool:
    """Statistics of ``count`` random painting crops, computed once (in batches), and draws from them."""

    def __init__(self, paintings: Photos, loss: DecoderLoss, count: int, batch: int):
        parts: List[Stats] = []
        done = 0
        while done < count:
            n = min(batch, count - done)
            parts.append({k: (m.cpu(), s.cpu()) for k, (m, s) in loss.style_stats(paintings.batch(n)).items()})
            done += n
        self.stats = {k: (torch.cat([p[k][0] for p in parts]), torch.cat([p[k][1] for p in parts])) for k in parts[0]}
        self.count = count

    def draw(self, count: int, generator: torch.Generator, device) -> Stats:
        picks = torch.randint(self.count, (count,), generator=generator)
        return {k: (m[picks].to(device), s[picks].to(device)) for k, (m, s) in self.stats.items()}


def _split(images: List[Image.Image], held: List[int]) -> Tuple[List[Image.Image], List[Image.Image]]:
    train_images = [im for i, im in enumerate(images) if i not in held]
    return train_images, [images[i] for i in held]


def train_decoder(
    photos,
    styles,
    output: Union[str, os.PathLike],
    options: Optional[DecoderTrainOptions] = None,
    resume: Optional[Union[str, os.PathLike]] = None,
    callback: Optional[Callable[[dict], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    command: Optional[str] = None,
    **fields: Any,
) -> DecoderTrainResult:
    """Train an AdaIN decoder on ``photos`` and the paintings ``styles`` (folders searched recursively, files or
    patterns; a ``holdout/`` folder inside either is kept out of training and shown in the preview) and save it
    at ``output`` (.pt, read by ``load_arbitrary``); returns a DecoderTrainResult. Settings: ``options`` and/or
    DecoderTrainOptions fields as keywords (``minutes=5``). ``resume``: a checkpoint to continue from (its
    settings are used except those in RESUMABLE, the budget, device and precision; loss weights given as keywords
    replace the checkpoint's, to fine-tune a decoder with another loss). ``callback(status)`` after each step;
    ``should_stop()`` returning True, or Ctrl-C, ends early: the decoder, a checkpoint and the report are still
    written and ``stopped`` is True."""
    started = time.perf_counter()
    options = options_from(DecoderTrainOptions, options, fields)
    checkpoint = None
    if resume is not None:
        checkpoint = read_checkpoint(resume, CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
        saved = dict(checkpoint["options"])
        for key in RESUMABLE:
            saved[key] = getattr(options, key)
        for key in LOSS_WEIGHTS:
            if key in fields:
                saved[key] = fields[key]
        options = DecoderTrainOptions(
            **{k: v for k, v in saved.items() if k in DecoderTrainOptions.__dataclass_fields__}
        ).validate()
    files = output_files(check_output(output))

    photo_paths, photo_images, skipped = load_photos(photos, options.size)
    painting_paths, painting_images, skipped_paintings = load_photos(styles, options.size)
    skipped = skipped + skipped_paintings
    if skipped:
        import warnings  # noqa: PLC0415

        warnings.warn(f"skipped {len(skipped)} unreadable image(s): " + "; ".join(skipped), stacklevel=2)
    held = holdout_folder_indices(photos, photo_paths) or held_out_indices(len(photo_images))
    held = [] if len(held) >= len(photo_images) else held
    train_photos, preview_photos = _split(photo_images, held)
    preview_photos = preview_photos[:MAX_HELD_OUT] or train_photos[:2]
    held_paintings = holdout_folder_indices(styles, painting_paths)
    held_paintings = [] if len(held_paintings) >= len(painting_images) else held_paintings
    train_paintings, preview_paintings = _split(painting_images, held_paintings)
    preview_names = [painting_paths[i].stem for i in held_paintings]
    for i, image in enumerate(painting_images):  # fill up with training paintings
        if len(preview_paintings) >= MAX_PREVIEW_PAINTINGS:
            break
        if i not in held_paintings:
            preview_paintings.append(image)
            preview_names.append(painting_paths[i].stem)
    preview_paintings, preview_names = preview_paintings[:MAX_PREVIEW_PAINTINGS], preview_names[:MAX_PREVIEW_PAINTINGS]

    device = devices.pick_device(options.device)
    precision = devices.pick_precision(options.precision, device)
    devices.configure_threads()
    channels_last = (precision == "bf16" or device.type == "cuda") and device.type != "mps"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    torch.manual_seed(options.seed)  # the decoder's starting weights
    decoder = Decoder(options.width).to(device, memory_format=memory_format)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=options.learning_rate)
    photo_data = Photos(train_photos, options.size, options.seed, options.zoom)
    painting_data = Photos(train_paintings, options.size, options.seed + 1, options.zoom)
    loss = DecoderLoss(options, device, precision, memory_format)
    pool = StylePool(painting_data, loss, options.style_pool, options.batch_size) if options.style_pool else None
    pick = torch.Generator().manual_seed(options.seed + 2)

    state = LoopState()
    if checkpoint is not None:
        decoder.load_state_dict(checkpoint["decoder"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        photo_data.generator.set_state(checkpoint["photo_generator"])
        painting_data.generator.set_state(checkpoint["painting_generator"])
        pick.set_state(checkpoint["pick_generator"])
        state.step, state.seconds_before = int(checkpoint["iteration"]), float(checkpoint["seconds"])
        state.history = [dict(h) for h in checkpoint["history"]]
        before = DecoderTrainOptions(**{k: v for k, v in checkpoint["options"].items() if k in LOSS_WEIGHTS})
        if all(getattr(before, k) == getattr(options, k) for k in LOSS_WEIGHTS):
            state.restore_watch(checkpoint.get("watch"))  # (other weights: the total means something else)

    preview_files: List[Path] = []

    def save_checkpoint() -> Path:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "options": options.to_dict(),
            "decoder": {k: v.detach().cpu() for k, v in decoder.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "photo_generator": photo_data.generator.get_state(),
            "painting_generator": painting_data.generator.get_state(),
            "pick_generator": pick.get_state(),
            "iteration": state.step,
            "seconds": state.seconds,
            "history": state.history,
            "watch": state.watch_state(),
        }
        return save_atomic(payload, files["checkpoint"])

    def write_preview(final: bool = False) -> None:
        if not preview_paintings:
            return
        model = ArbitraryModel(copy.deepcopy(decoder).float(), device=options.device, precision=options.precision)

        def stylize(photo: Image.Image, painting: Image.Image) -> Image.Image:
            return model.stylize(photo, painting, style_size=PREVIEW_SIZE)

        where = "held-out" if held else "training"
        sheet = previews.pairs_sheet(
            preview_photos,
            preview_paintings,
            stylize,
            PREVIEW_SIZE,
            [f"{n} (held out)" if i < len(held_paintings) else n for i, n in enumerate(preview_names)],
            title=f"AdaIN decoder: step {state.step}{'' if final else ' (training)'}, {where} photos",
        )
        path = previews.save_png(sheet, files["preview"])
        if path not in preview_files:
            preview_files.append(path)

    def preview_while_training() -> None:
        decoder.eval()
        write_preview()
        decoder.train()

    def one_step() -> Tuple[Dict[str, float], int]:
        batch = photo_data.batch(options.batch_size).to(device).contiguous(memory_format=memory_format)
        if pool is not None:
            style = pool.draw(options.batch_size, pick, device)
        else:
            style = loss.style_stats(painting_data.batch(options.batch_size))
        optimizer.zero_grad(set_to_none=True)
        terms = loss(decoder, batch, style)
        terms["total"].backward()
        optimizer.step()
        return {k: float(v.detach()) for k, v in terms.items()}, batch.shape[0]

    decoder.train()
    setup_seconds = time.perf_counter() - started
    loop.run(state, one_step, options, "train-decoder", save_checkpoint, preview_while_training, callback, should_stop)
    step, stopped, checkpoint_path = state.step, state.stopped, state.checkpoint_path
    rate, final, curve = state.images_per_second, state.final_losses(), state.curve()
    info = {
        "name": "adain-decoder",
        "options": options.to_dict(),
        "iterations": step,
        "seconds": round(state.seconds, 1),
        "images_per_second": round(rate, 3),
        "final_losses": final,
        "photos": len(train_photos),
        "paintings": [painting_paths[i].name for i in range(len(painting_paths)) if i not in held_paintings],
        "held_out_paintings": [painting_paths[i].name for i in held_paintings],
        "parameters": parameter_count(decoder),
        "machine": machine(device, precision),
        "command": command,
        "stopped": stopped,
        "loss_blew_up_at": state.blew_up_at,
    }
    decoder.eval()
    save_decoder(decoder, files["model"], info)
    write_preview(final=True)
    loss_plot = previews.save_png(
        previews.loss_plot(curve, options, title="AdaIN decoder: training loss"), files["loss"]
    )
    result = DecoderTrainResult(
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
        held_out=[str(photo_paths[i]) for i in held],
        photos=len(train_photos),
        paintings=len(train_paintings),
        held_out_paintings=[str(painting_paths[i]) for i in held_paintings],
    )
    report = {
        "neuralens": __version__,
        "photos": str(photos) if isinstance(photos, (str, os.PathLike)) else [str(p) for p in photos],
        "styles": str(styles) if isinstance(styles, (str, os.PathLike)) else [str(p) for p in styles],
        "command": command,
        "settings": options.to_dict(),
        "resumed_from": str(resume) if resume else None,
        "setup_seconds": round(setup_seconds, 2),
        "machine": info["machine"],
        "result": result.to_dict(),
    }
    save_atomic(json.dumps(report, indent=1, default=str), files["report"])
    return result
