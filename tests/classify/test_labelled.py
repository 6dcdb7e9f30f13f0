"""Reading labelled folders (shared by classify and faces): class order, refusals, duplicates, splits."""

import shutil
import unicodedata

import numpy as np
import pytest

from neuralens.errors import NeuralensError
from neuralens.labelled import read_labelled_folder, stratified_split


def _tree(root, layout):
    for rel, data in layout.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is not None:
            path.write_bytes(data)
    return root


def test_class_order_is_sorted_nfc_names_whatever_the_creation_order(tmp_path):
    names = ["zebra", "Ant", "ant", unicodedata.normalize("NFD", "élan"), "bee"]
    for i, name in enumerate(names):
        _tree(tmp_path, {f"{name}/{i}.jpg": bytes([i])})
    folder = read_labelled_folder(tmp_path)
    assert folder.classes == sorted(unicodedata.normalize("NFC", n) for n in names)
    assert "élan" in folder.classes  # composed, as another file system would store it
    again = read_labelled_folder(tmp_path)
    assert again.classes == folder.classes and [im.path for im in again.images] == [im.path for im in folder.images]
    assert list(folder.labels()) == sorted(folder.labels())


def test_empty_single_and_missing_are_refused_by_name(tmp_path):
    with pytest.raises(NeuralensError, match="no such folder"):
        read_labelled_folder(tmp_path / "nope")
    _tree(tmp_path, {"cat/a.jpg": b"a", "dog/notes.txt": b"x"})
    with pytest.raises(NeuralensError, match="'dog' has no images"):
        read_labelled_folder(tmp_path)
    shutil.rmtree(tmp_path / "dog")
    with pytest.raises(NeuralensError, match="found 1 class .*at least 2"):
        read_labelled_folder(tmp_path)
    assert read_labelled_folder(tmp_path, min_classes=1).classes == ["cat"]


def test_train_val_layout_and_duplicates(tmp_path):
    _tree(
        tmp_path,
        {
            "train/cat/a.jpg": b"same",
            "train/cat/b.jpg": b"b",
            "train/dog/c.jpg": b"c",
            "train/dog/d.jpg": b"same-2",
            "val/cat/e.jpg": b"same-2",  # a dog in the cat folder, and a train/val leak
            "val/dog/f.jpg": b"same",
        },
    )
    folder = read_labelled_folder(tmp_path)
    assert folder.has_split and folder.classes == ["cat", "dog"]
    assert folder.counts("val") == {"cat": 1, "dog": 1}
    warnings = " ".join(folder.warnings())
    assert "identical files in two classes" in warnings and "val/dog/f.jpg" in warnings
    _tree(tmp_path, {"val/bird/g.jpg": b"g"})
    with pytest.raises(NeuralensError, match="'val/bird' is in val/ but not in train/"):
        read_labelled_folder(tmp_path)


def test_unbalanced_classes_are_warned_about(tmp_path):
    _tree(tmp_path, {**{f"many/{i}.jpg": bytes([i]) for i in range(20)}, "few/x.jpg": b"x"})
    assert any("unbalanced classes: few (1)" in w for w in read_labelled_folder(tmp_path).warnings())


def test_split_is_seeded_stratified_and_keeps_copies_together():
    labels = np.array([0] * 20 + [1] * 10 + [2] * 2)
    train, held = stratified_split(labels, 0.2, seed=3)
    again = stratified_split(labels, 0.2, seed=3)
    assert (held == again[1]).all() and (train == ~held).all()
    assert [int(held[labels == k].sum()) for k in range(3)] == [4, 2, 1]
    assert not (held == stratified_split(labels, 0.2, seed=4)[1]).all()
    groups = [f"g{i // 2}" for i in range(20)] + [f"h{i}" for i in range(12)]  # class 0 in identical pairs
    _, held = stratified_split(labels, 0.2, seed=0, groups=groups)
    for i in range(0, 20, 2):
        assert held[i] == held[i + 1]
    with pytest.raises(NeuralensError, match="between 0 and 1"):
        stratified_split(labels, 1.5)
