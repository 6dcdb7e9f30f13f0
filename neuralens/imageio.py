"""Image input/output shared by every capability: load any common image safely, save atomically."""

from __future__ import annotations

import glob
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterable, List, Optional, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import NeuralensError

ImageLike = Union[str, os.PathLike, Image.Image]

# The photos and paintings shipped inside the package (credits in its CREDITS.md): the demo, the web app's
# samples, export checks and calibration use them.
SAMPLES = Path(__file__).resolve().parent / "samples"

# Refuse images above this many pixels before decoding them (decompression bombs, accidental huge scans).
# NEURALENS_MAX_PIXELS overrides it.
MAX_PIXELS = int(os.environ.get("NEURALENS_MAX_PIXELS", 100_000_000))

# Files that count as images when a folder or a pattern is searched (the one list every command uses).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

SAVE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}


def to_rgb(image: Image.Image) -> Image.Image:
    """Return an 8-bit RGB copy of any PIL image: honours EXIF orientation, flattens alpha onto white,
    and converts palette, greyscale, CMYK and 16/32-bit modes."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale the full range to 8 bits rather than clipping it.
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max() > 255 else 255.0
        array = np.clip(array / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(array, "L").convert("RGB")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        lo, hi = float(array.min()), float(array.max())
        array = (array - lo) / (hi - lo or 1.0) * 255.0
        return Image.fromarray(array.astype(np.uint8), "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(source: ImageLike, max_pixels: Optional[int] = None) -> Image.Image:
    """Load a path (or take a PIL image) and return it as 8-bit RGB, upright.

    Raises NeuralensError with a one-line message for a missing, unreadable, truncated or non-image file,
    or for an image of more than ``max_pixels`` pixels (default: MAX_PIXELS).
    """
    max_pixels = max_pixels or MAX_PIXELS
    if isinstance(source, Image.Image):
        if source.width * source.height > max_pixels:
            raise NeuralensError(f"image of {source.width}x{source.height} px is over the limit of {max_pixels} px")
        return to_rgb(source)
    path = Path(source)
    if not path.exists():
        raise NeuralensError(f"{path}: no such file")
    if path.is_dir():
        raise NeuralensError(f"{path}: is a folder, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > max_pixels:
                    raise NeuralensError(
                        f"{path}: {image.width}x{image.height} px is over the limit of {max_pixels} px"
                    )
                if image.width == 0 or image.height == 0:
                    raise NeuralensError(f"{path}: image has no pixels")
                image.load()  # decode now so truncation surfaces here, not later
                return to_rgb(image)
    except NeuralensError:
        raise
    except UnidentifiedImageError:
        raise NeuralensError(f"{path}: not an image file (or an unsupported format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise NeuralensError(f"{path}: image is too large to open safely") from None
    except PermissionError:
        raise NeuralensError(f"{path}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise NeuralensError(f"{path}: unreadable or truncated image ({exc})") from None


def is_image_name(path: Union[str, os.PathLike]) -> bool:
    """True when ``path``'s extension is one of IMAGE_SUFFIXES (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def find_images(
    sources: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]], recursive: bool = False
) -> List[Path]:
    """The image files named by ``sources``: a file as given, a folder replaced by the images in it (sorted;
    with ``recursive``, in its sub-folders too) and a pattern ('photos/*.jpg') by its matching images.

    A file named twice (or also found inside a named folder) is listed once. Existence of plain files is
    not checked here (loading names a missing one). Raises NeuralensError for a folder or pattern without
    images, or when nothing is named at all."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    found: List[Path] = []
    seen = set()

    def add(paths: Iterable[Path]) -> None:
        for path in paths:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(path)

    for source in sources:
        name = os.fspath(source)
        path = Path(name)
        if any(ch in name for ch in "*?[") and not path.exists():
            matches = sorted(
                Path(p) for p in glob.glob(name, recursive=recursive) if is_image_name(p) and Path(p).is_file()
            )
            if not matches:
                raise NeuralensError(f"{name}: no images match this pattern")
            add(matches)
        elif path.is_dir():
            walk = path.rglob("*") if recursive else path.iterdir()
            inside = sorted(
                p
                for p in walk
                if is_image_name(p)
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not inside:
                raise NeuralensError(f"{path}: no images in this folder")
            add(inside)
        else:
            add([path])
    if not found:
        raise NeuralensError("no images given")
    return found


def resize_long_side(image: Image.Image, long_side: int) -> Image.Image:
    """Return ``image`` scaled (Lanczos) so that its longer side is ``long_side`` pixels."""
    if long_side <= 0:
        raise NeuralensError(f"size must be a positive number of pixels, got {long_side}")
    scale = long_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image if size == image.size else image.resize(size, Image.LANCZOS)


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor of shape (1, 3, H, W) in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """Float tensor (1, 3, H, W) or (3, H, W) in [0, 1] -> RGB PIL image (values clipped)."""
    if tensor.dim() == 4:
        tensor = tensor[0]
    array = tensor.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


def check_output_path(path: Union[str, os.PathLike], writable: bool = True) -> Path:
    """Check that an image can be written at ``path`` (known extension, not a folder, and - with
    ``writable`` - a folder that exists and takes a new file, or can be created); return it as a Path.

    Commands call this before any work, so that a long run never ends with nowhere to put its result.
    Raises NeuralensError with the reason."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise NeuralensError(f"{path}: is a folder, not a file name")
    if path.suffix.lower() not in SAVE_FORMATS:
        known = ", ".join(sorted(SAVE_FORMATS))
        raise NeuralensError(f"{path}: unknown output format '{path.suffix}' (use one of {known})")
    if writable:
        check_writable_folder(path.parent)
    return path


def check_writable_folder(folder: Union[str, os.PathLike]) -> Path:
    """Check that files can be created in ``folder`` (creating it, and its parents, if missing): a
    temporary file is made and removed. Returns the folder; raises NeuralensError with the reason."""
    folder = Path(folder) if str(folder) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".neuralens-write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise NeuralensError(f"{folder}: cannot write there (a file of that name is in the way)") from None
    except OSError as exc:
        raise NeuralensError(f"{folder}: cannot write there ({exc.strerror or exc})") from None
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_image(image: Image.Image, path: Union[str, os.PathLike]) -> Path:
    """Write ``image`` to ``path`` atomically (temporary file in the same folder, then rename), so an
    existing file is never left half-written. The format follows the extension; a replaced file keeps its
    permissions. Returns the path. OSError (no space, no permission) propagates; see ``save_result``."""
    path = check_output_path(path, writable=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = SAVE_FORMATS[path.suffix.lower()]
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    try:
        mode = os.stat(path).st_mode & 0o7777  # replacing a file keeps its mode
    except OSError:
        mode = 0o666 & ~_umask()  # mkstemp makes files private; give the user's usual permissions
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format=fmt, **options)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_result(image: Image.Image, path: Union[str, os.PathLike]) -> Path:
    """Save a finished result at ``path``; when that fails (the folder vanished, the disk filled, the
    permission changed during the run), save it next to it or else in the temporary folder, and raise
    NeuralensError saying where it went - the work is never lost. Returns ``path`` when it worked."""
    path = Path(path)
    try:
        return save_image(image, path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
    for folder in (path.parent, Path(tempfile.gettempdir())):
        fallback = folder / f"{path.stem}.neuralens-{os.getpid()}{path.suffix}"
        try:
            save_image(image, fallback)
        except OSError:
            continue
        raise NeuralensError(f"could not write {path} ({reason}); saved the result as {fallback} instead")
    raise NeuralensError(f"could not write {path} ({reason}), nor a copy next to it or in the temporary folder")
