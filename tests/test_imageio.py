"""Image loading converts every common mode and refuses bad files with one-line errors."""

import io

import numpy as np
import pytest
from PIL import Image

from neuralens import imageio
from neuralens.errors import NeuralensError
from neuralens.imageio import load_image, save_image


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "CMYK", "I;16", "I", "F", "1"])
def test_modes_become_rgb(tmp_path, content_image, mode):
    image = content_image.convert(mode) if mode not in ("I;16", "I", "F") else content_image.convert("L").convert(mode)
    suffix = ".tif" if mode in ("CMYK", "I", "F") else ".png"
    path = tmp_path / f"x{suffix}"
    image.save(path)
    out = load_image(path)
    assert out.mode == "RGB" and out.size == content_image.size


def test_16_bit_range_is_scaled_not_clipped(tmp_path):
    array = np.full((4, 4), 65535, dtype=np.uint16)
    array[0, 0] = 0
    Image.fromarray(array).save(tmp_path / "deep.png")
    out = np.asarray(load_image(tmp_path / "deep.png"))
    assert out[1, 1].tolist() == [255, 255, 255] and out[0, 0].tolist() == [0, 0, 0]


def test_transparent_pixels_become_white(tmp_path):
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    image.save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_honoured(tmp_path):
    image = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").size == (20, 40)


def test_bad_files(tmp_path, content_image):
    with pytest.raises(NeuralensError, match="no such file"):
        load_image(tmp_path / "missing.jpg")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NeuralensError, match="not an image"):
        load_image(tmp_path / "notes.txt")
    buffer = io.BytesIO()
    content_image.save(buffer, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(NeuralensError, match="truncated"):
        load_image(tmp_path / "cut.jpg")
    with pytest.raises(NeuralensError, match="folder"):
        load_image(tmp_path)


def test_pixel_limit(tmp_path, content_image, monkeypatch):
    content_image.save(tmp_path / "a.png")
    with pytest.raises(NeuralensError, match="over the limit"):
        load_image(tmp_path / "a.png", max_pixels=100)
    monkeypatch.setattr(imageio, "MAX_PIXELS", 100)
    with pytest.raises(NeuralensError, match="over the limit"):
        load_image(tmp_path / "a.png")


def test_save_by_extension(tmp_path, content_image):
    for suffix, fmt in [(".png", "PNG"), (".jpg", "JPEG"), (".tiff", "TIFF")]:
        path = save_image(content_image, tmp_path / f"out{suffix}")
        assert Image.open(path).format == fmt
    with pytest.raises(NeuralensError, match="unknown output format"):
        save_image(content_image, tmp_path / "out.xyz")


def test_failed_save_leaves_existing_file_intact(tmp_path, content_image, monkeypatch):
    path = tmp_path / "out.png"
    path.write_bytes(b"precious")

    def broken_save(self, fp, format=None, **kw):
        fp.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        save_image(content_image, path)
    assert path.read_bytes() == b"precious"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_replacing_an_output_keeps_its_file_mode(tmp_path):
    import os

    out = tmp_path / "out.png"
    save_image(Image.new("RGB", (4, 4)), out)
    os.chmod(out, 0o640)
    save_image(Image.new("RGB", (4, 4), (255, 0, 0)), out)
    assert os.stat(out).st_mode & 0o777 == 0o640
    assert Image.open(out).getpixel((0, 0)) == (255, 0, 0)


def test_check_output_path_refuses_an_unwritable_place(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NeuralensError, match="cannot write there"):
        imageio.check_output_path(blocker / "out.png")
    assert imageio.check_output_path(tmp_path / "new" / "out.png").parent.is_dir()  # made on the way


def test_find_images_files_folders_patterns(tmp_path):
    for name in ("b.jpg", "a.PNG", "notes.txt", ".hidden.png"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.webp").write_bytes(b"")
    assert [p.name for p in imageio.find_images(tmp_path)] == ["a.PNG", "b.jpg"]
    assert [p.name for p in imageio.find_images(tmp_path, recursive=True)] == ["a.PNG", "b.jpg", "c.webp"]
    assert [p.name for p in imageio.find_images(str(tmp_path / "*.jpg"))] == ["b.jpg"]
    assert [p.name for p in imageio.find_images([tmp_path / "b.jpg", tmp_path])] == ["b.jpg", "a.PNG"]
    with pytest.raises(NeuralensError, match="no images in this folder"):
        imageio.find_images(_empty(tmp_path))
    with pytest.raises(NeuralensError, match="no images match"):
        imageio.find_images(str(tmp_path / "*.gif"))


def _empty(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder
