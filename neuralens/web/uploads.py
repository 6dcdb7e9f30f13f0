"""Uploaded images: size-limited, recognised by content, decoded in memory, never saved under a client's name."""

from __future__ import annotations

import io
import warnings
from typing import Optional

from PIL import Image, UnidentifiedImageError

from ..errors import NeuralensError
from ..imageio import load_image

# Only these decoders run on uploads: the common photo formats. PIL's rarer plug-ins are left out because
# every decoder is attack surface and nobody drags a PCX onto a web page.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


class UploadError(NeuralensError):
    """An upload the server refuses, with the HTTP status that says why."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def read_limited(stream, label: str, max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` from a file-like object; refuse (413) anything longer and empty files (400)."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadError(
            f"{label}: file is larger than the limit of {max_bytes // 1_000_000 or max_bytes} "
            f"{'MB' if max_bytes >= 1_000_000 else 'bytes'}",
            413,
        )
    if not data:
        raise UploadError(f"{label}: the file is empty", 400)
    return data


def decode_image(data: bytes, label: str, max_pixels: int) -> Image.Image:
    """Decode image bytes into an upright 8-bit RGB PIL image.

    The format is recognised from the bytes (the client's file name and content type are ignored). Raises
    UploadError: 415 when the bytes are not a supported image, 413 when it has more than ``max_pixels``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            # The header gives the size before any pixel is decoded: refuse huge images before spending memory.
            if image.width * image.height > max_pixels:
                raise UploadError(f"{label}: {image.width}x{image.height} px is over the limit of {max_pixels} px", 413)
            if image.width == 0 or image.height == 0:
                raise UploadError(f"{label}: the image has no pixels", 415)
            image.load()
            return load_image(image, max_pixels)
    except UploadError:
        raise
    except UnidentifiedImageError:
        raise UploadError(f"{label}: not an image (supported: {', '.join(FORMATS)})", 415) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(f"{label}: image is far over the limit of {max_pixels} px", 413) from None
    except NeuralensError as exc:
        raise UploadError(f"{label}: {exc}", 415) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UploadError(f"{label}: unreadable or truncated image ({exc})", 415) from None


def read_image(upload, label: str, max_bytes: int, max_pixels: int) -> Image.Image:
    """An uploaded file (FastAPI ``UploadFile``) as a checked RGB image."""
    name: Optional[str] = getattr(upload, "filename", None)
    # The client's file name is only ever shown back in messages, trimmed; it never reaches the disk.
    shown = f"{label} ({name[:60]})" if name else label
    return decode_image(read_limited(upload.file, shown, max_bytes), shown, max_pixels)
