"""scripts/gather_photos.py: the licence filter, resizing and the manifest, the held-out split.

No network and no apt: the Debian and scikit-image sources are switched off; a temporary folder stands in
for the shared photos."""

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gather_photos.py"


@pytest.fixture(scope="module")
def gp():
    spec = importlib.util.spec_from_file_location("gather_photos", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gather_photos"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gather_photos", None)


COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: some-backgrounds

Files: *
Copyright: 2014 A Group <group@example.org>
License: GPL-2+

Files: nature/Lake.jpg
       nature/Hill_*.jpg
Copyright: 2008, Ann Author <ann@example.org>
           2009, Bob Helper
License: CC-BY-SA-4.0

Files: nature/Private.jpg
Copyright: 2010 Someone
License: CC-BY-NC-4.0

Files: nature/Mystery.jpg
Copyright: 2010 Nobody
License: non-free

Files: debian/*
Copyright: 2020 Packager
License: GPL-2+

License: GPL-2+
 This package is free software; you can redistribute it and/or modify
 .
 it under the terms of the GNU General Public License.
"""


def test_licence_filter_on_a_dep5_file(gp):
    stanzas = gp.parse_dep5(COPYRIGHT)
    assert [s.licence for s in stanzas] == ["GPL-2+", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "non-free", "GPL-2+"]

    def licence(path):
        stanza = gp.stanza_for(stanzas, path)
        return stanza.licence, gp.licence_allows_reuse(stanza.licence)

    # Installed paths match the source paths of the stanzas by their trailing parts; the last match wins.
    assert licence("usr/share/backgrounds/x/nature/Lake.jpg") == ("CC-BY-SA-4.0", True)
    assert licence("usr/share/backgrounds/x/nature/Hill_3840x2160.jpg") == ("CC-BY-SA-4.0", True)
    assert licence("usr/share/backgrounds/x/nature/Other.jpg") == ("GPL-2+", True)
    assert licence("usr/share/backgrounds/x/nature/Private.jpg") == ("CC-BY-NC-4.0", False)
    assert licence("usr/share/backgrounds/x/nature/Mystery.jpg") == ("non-free", False)
    lake = gp.stanza_for(stanzas, "usr/share/backgrounds/x/nature/Lake.jpg")
    assert gp.credit_from_copyright(lake.copyright) == "2008, Ann Author; 2009, Bob Helper"
    # Not machine-readable: no stanzas at all, so nothing from such a package is kept.
    assert gp.parse_dep5("This package was debianized by someone.\n\nLicensed under the GPL.\n") is None


@pytest.mark.parametrize(
    "text, free",
    [
        ("CC0-1.0", True),
        ("CC-BY-3.0", True),
        ("CC BY 3.0: credit the author", True),
        ("public domain / CC0", True),
        ("LGPLv3", True),
        ("GPL-2+ or CC-BY-NC-4.0", True),
        ("GPL-2+ and CC-BY-NC-4.0", False),
        ("CC-BY-ND-4.0", False),
        ("CC-BY-NC-SA-3.0", False),
        ("non-free", False),
        ("unknown", False),
        ("", False),
    ],
)
def test_licence_names(gp, text, free):
    assert gp.licence_allows_reuse(text) is free


def _shared_folder(tmp_path):
    """Two tiny photos and one without a licence, with a README table like shared/data/README.md."""
    folder = tmp_path / "data" / "content"
    folder.mkdir(parents=True)
    Image.new("RGB", (700, 520), (200, 60, 30)).save(folder / "wide.png")
    tall = Image.linear_gradient("L").resize((40, 90)).convert("RGB")
    tall.save(folder / "Tall Photo.jpg", quality=95)
    Image.new("RGB", (50, 50), (0, 0, 255)).save(folder / "unlisted.png")
    (tmp_path / "data" / "README.md").write_text(
        "# Sample images\n\n## content/ — photos\n| file | source | licence |\n| --- | --- | --- |\n"
        "| wide.png | a red wall, by Ann | CC BY 3.0: credit the author |\n"
        "| Tall Photo.jpg | a gradient | CC0 |\n",
        encoding="utf-8",
    )
    return folder


def _run(gp, folder, out, *extra):
    return gp.main(["-o", str(out), "--shared", str(folder), "--no-apt", "--no-skimage", *extra])


def test_resize_and_manifest(gp, tmp_path, capsys):
    folder = _shared_folder(tmp_path)
    out = tmp_path / "photos"
    assert _run(gp, folder, out) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith("2 photos in ")
    wide, tall = Image.open(out / "shared-wide.jpg"), Image.open(out / "shared-tall-photo.jpg")
    assert (wide.format, wide.size) == ("JPEG", (689, 512))  # short side brought down to 512
    assert tall.size == (40, 90)  # never enlarged
    with (out / "MANIFEST.csv").open(newline="", encoding="utf-8") as handle:
        rows = {row["file"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"shared-wide.jpg", "shared-tall-photo.jpg"}  # unlisted.png: no licence, skipped
    row = rows["shared-wide.jpg"]
    assert (row["source"], row["licence"], row["credit"], row["split"]) == (
        "shared",
        "CC BY 3.0",
        "a red wall, by Ann",
        "train",
    )
    assert row["original_path"].endswith("wide.png") and (row["width"], row["height"]) == ("689", "512")

    # Idempotent: a second run rewrites nothing and gives the same manifest.
    before = (out / "MANIFEST.csv").read_text(), (out / "shared-wide.jpg").stat().st_mtime_ns
    assert _run(gp, folder, out) == 0
    assert ((out / "MANIFEST.csv").read_text(), (out / "shared-wide.jpg").stat().st_mtime_ns) == before


def test_holdout_is_deterministic(gp, tmp_path, capsys):
    names = [f"photo-{i}.jpg" for i in range(20)]
    chosen = gp.choose_holdout(names, 4)
    assert len(chosen) == 4 and set(chosen) <= set(names)
    assert gp.choose_holdout(list(reversed(names)), 4) == chosen  # independent of the order found
    assert set(gp.choose_holdout(names, 5)) > set(chosen)  # one more keeps the first four
    with pytest.raises(gp.GatherError):
        gp.choose_holdout(names, 21)

    folder = _shared_folder(tmp_path)
    out = tmp_path / "photos"
    assert _run(gp, folder, out, "--holdout", "1") == 0
    held = sorted(p.name for p in (out / "holdout").iterdir())
    assert held == gp.choose_holdout(["shared-wide.jpg", "shared-tall-photo.jpg"], 1)
    assert not (out / held[0]).exists()  # moved, not copied
    assert _run(gp, folder, out, "--holdout", "1") == 0
    assert sorted(p.name for p in (out / "holdout").iterdir()) == held
    # Back to no hold-out: the photo returns to the training folder; nothing is left behind.
    assert _run(gp, folder, out) == 0
    assert (out / held[0]).is_file() and not list((out / "holdout").iterdir())
    capsys.readouterr()
    # Too many: one line on stderr, exit status 2.
    assert _run(gp, folder, out, "--holdout", "3") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --holdout 3 is more than the 2 photos found"]
