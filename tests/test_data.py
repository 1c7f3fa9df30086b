"""Datasets: IDX reader, Fashion-MNIST splits and errors, image folders, digits, resumable batches, augmentation."""

import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from maskgit.data import (
    FASHION_MNIST_CLASSES,
    EpochBatchSampler,
    augment,
    build_dataset,
    dataset_fingerprint,
    load_fashion_mnist,
    read_idx,
    split_indices,
)

FMNIST = pytest.importorskip("pathlib").Path("/usr/share/datasets/fashion-mnist")
needs_fmnist = pytest.mark.skipif(not (FMNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                                  reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")


def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_idx_reader_round_trip_and_truncation(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x.gz", array)
    assert np.array_equal(read_idx(tmp_path / "x.gz"), array)
    write_idx(tmp_path / "bad.gz", array)
    data = gzip.open(tmp_path / "bad.gz").read()[:-5]
    with gzip.open(tmp_path / "bad.gz", "wb") as fh:
        fh.write(data)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "bad.gz")


@pytest.mark.parametrize("content", [b"", b"not gzip at all", b"\x1f\x8b\x08\x00broken", "empty-gzip",
                                     "short-header", "cut-stream"])
def test_corrupt_or_empty_idx_files_name_the_file_and_how_to_get_it_again(tmp_path, content):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    if content == "empty-gzip":
        content = gzip.compress(b"")
    elif content == "short-header":
        content = gzip.compress(struct.pack(">HBB", 0, 0x08, 3) + b"\x00\x00")  # dims cut short
    elif content == "cut-stream":
        content = gzip.compress(bytes(1000))[:-12]  # gzip stream without its end
    path.write_bytes(content)
    with pytest.raises(ValueError, match="corrupt or truncated") as err:
        read_idx(path)
    assert str(path) in str(err.value) and "apt-get install dataset-fashion-mnist" in str(err.value)
    assert "fashion-mnist.s3" in str(err.value)


def test_missing_fashion_mnist_names_the_package_and_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as err:
        load_fashion_mnist(tmp_path, "train")
    assert "fashion-mnist.s3" in str(err.value)


def test_fashion_mnist_from_a_custom_root(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (20, 28, 28))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10)
    x, y = load_fashion_mnist(tmp_path, "test")
    assert x.shape == (20, 28, 28) and x.dtype == torch.uint8 and y.tolist()[:3] == [0, 1, 2]
    ds = build_dataset("fashion-mnist", "test", root=tmp_path)
    image, label = ds[3]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and label == 3
    assert 0 <= image.min() and image.max() <= 1


@needs_fmnist
def test_real_fashion_mnist_splits_are_disjoint_and_deterministic():
    train, val, test = (build_dataset("fashion-mnist", s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (55_000, 5_000, 10_000)
    assert len(FASHION_MNIST_CLASSES) == 10 and train.classes == FASHION_MNIST_CLASSES
    assert torch.equal(build_dataset("fashion-mnist", "val").images, val.images)
    rgb = build_dataset("fashion-mnist", "val", image_size=32, channels=3)
    assert rgb[0][0].shape == (3, 32, 32)


def test_digits_resized_and_split():
    ds = build_dataset("digits", "train", image_size=28)
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and 0 <= label < 10
    sizes = [len(build_dataset("digits", s)) for s in ("train", "val", "test")]
    assert sum(sizes) == 1797 and sizes[1] == sizes[2] == 180


def test_split_indices_partition():
    parts = [set(split_indices(100, s).tolist()) for s in ("train", "val", "test")]
    assert set.union(*parts) == set(range(100)) and sum(len(p) for p in parts) == 100
    assert torch.equal(split_indices(100, "val"), split_indices(100, "val"))
    with pytest.raises(ValueError, match="split"):
        split_indices(10, "holdout")


def test_image_folder(tmp_path):
    for cls, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        for i in range(10):
            Image.new("RGB", (40, 30), colour).save(tmp_path / cls / f"{i}.{'png' if i % 2 else 'jpg'}")
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    train = build_dataset(str(tmp_path), "train", image_size=16)
    assert len(train) == 16 and train.classes == ("cats", "dogs")
    image, label = train[0]
    assert image.shape == (3, 16, 16)
    assert image[0].mean() > 0.9 if label == 0 else image[2].mean() > 0.9
    grey = build_dataset(str(tmp_path), "test", image_size=8, channels=1)
    with pytest.raises(ValueError, match="colour pixels"):  # never silently turned grey
        grey[0]
    with pytest.raises(FileNotFoundError, match="fashion-mnist"):
        build_dataset(str(tmp_path / "nope"), "train", image_size=8)


def _image_folder(root, per_class: int, classes=("cats", "dogs")):
    for c, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (12, 12), (40 * i, 100 * c, 0)).save(root / cls / f"{i}.png")
    return root


def test_image_folder_with_a_corrupt_file_names_it(tmp_path):
    _image_folder(tmp_path, 5)
    broken = tmp_path / "dogs" / "2.png"
    broken.write_bytes(b"\x89PNG not really")
    dataset = build_dataset(str(tmp_path), "trainval", image_size=8)
    with pytest.raises(ValueError, match="remove or fix it") as err:
        [dataset[i] for i in range(len(dataset))]
    assert f"cannot read image {broken}" in str(err.value)


@pytest.mark.parametrize("count", [1, 2])
def test_image_folder_too_small_for_the_split_says_how_many_are_needed(tmp_path, count):
    (tmp_path / "cats").mkdir()
    for i in range(count):
        Image.new("RGB", (12, 12)).save(tmp_path / "cats" / f"{i}.png")
    with pytest.raises(ValueError, match=f"holds {count} image\\(s\\), too few for the train/val/test split; "
                                         f"need at least 3"):
        build_dataset(str(tmp_path), "train", image_size=8)
    Image.new("RGB", (12, 12)).save(tmp_path / "cats" / "extra.png")
    Image.new("RGB", (12, 12)).save(tmp_path / "cats" / "extra2.png")
    assert len(build_dataset(str(tmp_path), "train", image_size=8)) >= 1


def test_dataset_fingerprint_follows_contents_not_just_size(tmp_path):
    a, b = build_dataset("digits", "val"), build_dataset("digits", "test")
    assert len(a) == len(b) and dataset_fingerprint(a) != dataset_fingerprint(b)
    assert dataset_fingerprint(a) == dataset_fingerprint(build_dataset("digits", "val"))
    assert dataset_fingerprint(a) != dataset_fingerprint(build_dataset("digits", "val", image_size=16))
    folder = build_dataset(str(_image_folder(tmp_path, 5)), "train", image_size=8)
    before = dataset_fingerprint(folder)
    assert before != dataset_fingerprint(build_dataset(str(tmp_path), "train", image_size=8, channels=1))
    Image.new("RGB", (16, 16)).save(folder.files[0])  # replaced in place: same name, other image
    assert dataset_fingerprint(build_dataset(str(tmp_path), "train", image_size=8)) != before


def test_epoch_batch_sampler_resumes_and_shards():
    full = EpochBatchSampler(10, 4, seed=1)
    batches = [full.batch(i) for i in range(5)]
    flat = sum(batches, [])
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))  # whole epochs
    resumed = iter(EpochBatchSampler(10, 4, seed=1, start_batch=3))
    assert next(resumed) == batches[3]
    shards = [EpochBatchSampler(10, 4, seed=1, rank=r, world=2).batch(2) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == sorted(batches[2])


def test_augment_is_deterministic_and_keeps_shapes():
    images = torch.rand(6, 1, 8, 8)
    a = augment(images, torch.Generator().manual_seed(0), hflip=True, crop_pad=2)
    b = augment(images, torch.Generator().manual_seed(0), hflip=True, crop_pad=2)
    assert a.shape == images.shape and torch.equal(a, b)
    assert torch.equal(augment(images, torch.Generator(), hflip=False, crop_pad=0), images)
