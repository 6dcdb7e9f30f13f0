"""What an AdaIN decoder keeps of the photo: decoder files side by side on the held-out photos and painting.

    python -m benchmarks.decoder_check DECODER.pt [DECODER.pt ...] [--size 256] [--name decoder_check]

For each held-out photo c of data/photos/holdout (and the bundled Tübingen photo) with the held-out painting s of
data/paintings/holdout, at ``--size`` px, fp32, with the encoder f (VGG19 to relu4_1) and each decoder g:

- **round trip**: PSNR of g(f(c)) against c (dB; a flat grey image scores about 13 dB on Tübingen);
- **content**: t = AdaIN(f(c), f(s)); the training's content loss ||f(g(t)) - t||^2 (scaled as in training), beside
  **t's spatial variance** (the same loss for an image whose features were t's channel means everywhere: a decoder
  scoring above it keeps less of the photo's layout than a flat texture would), and the **spatial correlation** of
  f(g(t)) with t (channel means removed; 1: the layout is kept, 0: none of it);
- **style**: the training's style loss of g(t) (channel means and deviations at relu1_1..relu4_1) against s.

The training losses say how a decoder does on training crops; this says what it keeps of unseen photos, which is
what a user sees. Report: ``results/NAME.md`` / ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .style_common import RESULTS, json_safe, machine_info, machine_markdown, markdown_table

ROOT = Path(__file__).resolve().parent.parent
HOLDOUT_PHOTOS = ROOT / "data" / "photos" / "holdout"
HOLDOUT_PAINTINGS = ROOT / "data" / "paintings" / "holdout"
TUEBINGEN = ROOT / "neuralens" / "samples" / "tubingen.jpg"


def check(decoder: Path, photos: Sequence[Path], painting: Path, size: int) -> List[Dict[str, Any]]:
    """One row per photo: round-trip PSNR, content loss, t's spatial variance, spatial correlation, style loss."""
    import torch
    import torch.nn.functional as F

    from neuralens.fast.adain import ADAIN_LAYER, LAYER_SCALE, STYLE_LAYERS, adain, style_statistics
    from neuralens.fast.arbitrary import load_arbitrary
    from neuralens.fast.decoder_training import style_loss
    from neuralens.imageio import image_to_tensor, load_image, resize_long_side

    model = load_arbitrary(decoder, device="cpu", precision="fp32")
    encoder, decode = model.encoder, model.decoder.float().eval()
    scale = LAYER_SCALE[ADAIN_LAYER] ** 2
    rows = []
    with torch.inference_mode():
        painting_image = image_to_tensor(resize_long_side(load_image(painting), size))
        style_stats = style_statistics(encoder(painting_image, STYLE_LAYERS))
        for path in photos:
            photo = image_to_tensor(resize_long_side(load_image(path), size))
            psnr = float(10 * torch.log10(1.0 / (model.reconstruct_tensor(photo) - photo).pow(2).mean()))
            target = adain(encoder(photo, [ADAIN_LAYER])[ADAIN_LAYER], *style_stats[ADAIN_LAYER])
            out = encoder(decode(target).clamp(0, 1), STYLE_LAYERS)
            ours = out[ADAIN_LAYER]
            spread = target - target.mean((2, 3), keepdim=True)
            mine = ours - ours.mean((2, 3), keepdim=True)
            rows.append(
                {
                    "photo": path.stem,
                    "round_trip_db": round(psnr, 2),
                    "content": round(float(F.mse_loss(ours, target) / scale), 3),
                    "target_spatial_variance": round(float(spread.pow(2).mean() / scale), 3),
                    "spatial_correlation": round(float((mine * spread).sum() / (mine.norm() * spread.norm())), 3),
                    "style": round(float(style_loss(out, style_stats)), 3),
                }
            )
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("decoders", type=Path, nargs="+")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--name", default="decoder_check")
    args = p.parse_args(argv)
    photos = [TUEBINGEN, *sorted(HOLDOUT_PHOTOS.glob("*.jpg"))]
    paintings = sorted(HOLDOUT_PAINTINGS.glob("*.jpg"))
    if len(photos) < 2 or not paintings:
        raise SystemExit("error: run scripts/gather_photos.py and scripts/gather_paintings.py first (holdout/)")
    data: Dict[str, Any] = {"size": args.size, "painting": paintings[0].name, "decoders": {}}
    table = []
    for decoder in args.decoders:
        rows = check(decoder, photos, paintings[0], args.size)
        data["decoders"][str(decoder)] = rows
        for row in rows:
            table.append([decoder, *row.values()])
        means = {k: round(sum(r[k] for r in rows) / len(rows), 3) for k in rows[0] if k != "photo"}
        table.append([decoder, "**mean**", *means.values()])
    header = ["decoder", "photo", "round trip dB", "content", "t's spatial variance", "spatial correlation", "style"]
    body = (
        f"# What AdaIN decoders keep of the photo ({paintings[0].stem}, held out, at {args.size} px)\n\n"
        f"`python -m benchmarks.decoder_check {' '.join(map(str, args.decoders))} --size {args.size}` "
        "(see its docstring for the measures).\n\n" + markdown_table(header, table) + "\n\n"
    )
    data["machine"] = machine_info()
    body += machine_markdown(data["machine"]) + "\n"
    (RESULTS / f"{args.name}.md").write_text(body)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(json_safe(data), indent=1) + "\n")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
