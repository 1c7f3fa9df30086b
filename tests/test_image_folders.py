"""Image folders: the explicit train/ val/ layout used as given, class indices, and what describe_data reports."""

import pytest
import torch
from PIL import Image

from maskgit.data import build_dataset, dataset_fingerprint
from maskgit.data_fit import describe_data
from maskgit.image_folders import class_index, layout_split, split_layout


def _class_folder(root, classes, per_class, size=(12, 10)):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", size, (20 * i, 60 * c, 200)).save(root / name / f"{i}.png")
    return root


@pytest.fixture()
def layout(tmp_path):
    """ImageNet-style: train/ (3 classes x 4) and val/ (3 classes x 2) side by side, plus a hidden entry."""
    _class_folder(tmp_path / "train", ("n01", "n02", "n03"), 4)
    _class_folder(tmp_path / "val", ("n01", "n02", "n03"), 2)
    (tmp_path / ".DS_Store").write_text("x")
    return tmp_path


def test_class_index_is_a_dict_of_sorted_names():
    assert class_index(("a", "b", "c")) == {"a": 0, "b": 1, "c": 2}


def test_explicit_layout_is_used_as_given(layout):
    assert set(split_layout(layout)) == {"train", "val"}
    train, val = build_dataset(str(layout), "train", image_size=8), build_dataset(str(layout), "val", image_size=8)
    assert len(train) == 12 and len(val) == 6 and train.classes == val.classes == ("n01", "n02", "n03")
    assert all(f.parts[-3] == "train" for f in train.files) and all(f.parts[-3] == "val" for f in val.files)
    assert val.labels.tolist() == [0, 0, 1, 1, 2, 2]
    both = build_dataset(str(layout), "trainval", image_size=8)
    assert len(both) == 18 and both.labels.tolist() == train.labels.tolist() + val.labels.tolist()
    image, label = val[2]
    assert image.shape == (3, 8, 8) and label == 1
    assert dataset_fingerprint(train) != dataset_fingerprint(val)


def test_explicit_layout_without_test_says_which_splits_it_has(layout):
    with pytest.raises(ValueError, match="no test/ folder .*train/, val/"):
        build_dataset(str(layout), "test", image_size=8)


def test_a_val_class_missing_from_train_is_refused(layout):
    _class_folder(layout / "val", ("n99",), 1)
    with pytest.raises(ValueError, match="n99"):
        layout_split(layout, "val")


def test_a_single_folder_named_like_classes_is_not_a_layout(tmp_path):
    _class_folder(tmp_path, ("train", "val", "zebra"), 5)  # a third folder: these are classes
    assert split_layout(tmp_path) is None
    dataset = build_dataset(str(tmp_path), "trainval", image_size=8)
    assert dataset.classes == ("train", "val", "zebra")


def test_single_folder_split_keeps_labels_of_its_class_folders(tmp_path):
    _class_folder(tmp_path, ("cats", "dogs"), 10)
    test = build_dataset(str(tmp_path), "test", image_size=8)
    assert [test.classes[int(label)] for label in test.labels] == [f.parent.name for f in test.files]


def test_describe_data_counts_the_splits_of_a_layout(layout):
    info = describe_data(str(layout), progress=False)
    assert info.classes == ("n01", "n02", "n03") and info.num_items == 18 and info.skipped == 0
    assert info.split_sizes == {"train": 12, "val": 6}
    assert info.split_size("train") == 12 and info.split_size("trainval") == 18
    assert info.sizes == {(12, 10): 18} and info.channels == 3


def test_folder_labels_do_not_search_the_class_list(tmp_path, monkeypatch):
    """Labels come from one dict: a class list without `index` still labels every file."""
    _class_folder(tmp_path, ("a", "b"), 3)
    from maskgit import image_folders

    original = image_folders.list_image_folder

    class NoIndex(tuple):
        def index(self, *args):
            raise AssertionError("linear search of the class list")

    monkeypatch.setattr(image_folders, "list_image_folder",
                        lambda *a, **k: (NoIndex(original(*a, **k)[0]),) + original(*a, **k)[1:])
    dataset = image_folders.ImageFolderDataset(tmp_path, 8)
    assert torch.equal(dataset.labels, torch.tensor([0, 0, 0, 1, 1, 1]))
