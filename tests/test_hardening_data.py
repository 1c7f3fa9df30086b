"""Data folders and image inputs that used to go silently wrong (issue 23): hidden and OS metadata entries, class
folders with numeric names, images too large to decode, and non-square inputs with --resize."""
import argparse
import dataclasses
import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from maskgit import MaskGIT
from maskgit.cli import build_parser, main
from maskgit.config import ModelConfig
from maskgit.data import ImageFolderDataset, build_dataset
from maskgit.data_fit import check_fit, describe_data
from maskgit.editing_io import load_inputs, load_mask
from maskgit.evaluation.image_sets import load_image_set
from maskgit.images import MAX_IMAGE_PIXELS, load_image
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS


def _png(path, value=0, size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
    return path


def _folder(root, classes=("cat", "dog"), per_class=4):
    for c, name in enumerate(classes):
        for i in range(per_class):
            _png(root / name / f"{i}.png", 40 + 150 * c)
    return root


def _zero_png(path, width, height):
    """A grey PNG of zeros written row by row: a few hundred KB on disk, never the whole image in memory."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp, row = zlib.compressobj(9), bytes(width + 1)  # filter byte 0, then the row
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


# ------------------------------------------------------------------------------ hidden and OS metadata entries
def test_hidden_folder_is_not_a_class_and_is_noted(tmp_path):
    root = _folder(tmp_path / "data")
    _png(root / ".ipynb_checkpoints" / "0-checkpoint.png")
    _png(root / "cat" / ".ipynb_checkpoints" / "0-checkpoint.png")  # nested: would duplicate an image
    dataset = ImageFolderDataset(root, 8)
    assert dataset.classes == ("cat", "dog")
    assert len(dataset) == 8 and dataset.labels.tolist() == [0] * 4 + [1] * 4
    info = describe_data(str(root))
    assert info.classes == ("cat", "dog") and info.num_items == 8
    notes = check_fit(info, 3, 8, resize=False, what="the tokenizer")
    assert any("skipped 2 hidden or system" in n for n in notes), notes


def test_macos_and_windows_metadata_files_are_skipped(tmp_path):
    root = _folder(tmp_path / "data")
    (root / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07AppleDouble garbage")  # macOS resource forks
    (root / "dog" / "._1.png").write_bytes(b"\x00\x05\x16\x07")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "cat" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "dog" / "desktop.ini").write_text("[.ShellClassInfo]\n")
    _png(root / "__MACOSX" / "cat" / "0.png")  # zip archives made on macOS
    _png(root / "cat" / "Thumbs.db.png")  # a real image with an odd name is kept
    info = describe_data(str(root))  # used to raise: "cannot read image .../._0.png"
    assert info.classes == ("cat", "dog") and info.num_items == 9
    notes = check_fit(info, 3, 8, resize=False, what="the tokenizer")
    assert any("skipped 6 hidden or system" in n for n in notes), notes
    dataset = build_dataset(str(root), "trainval", 8)
    assert all(dataset[i][0].shape == (3, 8, 8) for i in range(len(dataset)))
    # metrics image folders follow the same rule
    metrics_folder = tmp_path / "samples"
    for i in range(3):
        _png(metrics_folder / f"{i}.png", 10 * i)
    (metrics_folder / "._0.png").write_bytes(b"\x00\x05\x16\x07")
    _png(metrics_folder / ".ipynb_checkpoints" / "0-checkpoint.png", 255)
    assert len(load_image_set(metrics_folder)) == 3


# ------------------------------------------------------------------------------ class names that look like numbers
def _named_model(directory, class_names):
    torch.manual_seed(0)
    cfg = ModelConfig(tokenizer=TOKENIZER_PRESETS["tiny"], class_names=class_names,
                      transformer=dataclasses.replace(TRANSFORMER_PRESETS["tiny"], num_classes=len(class_names)))
    return MaskGIT.from_config(cfg).save_pretrained(directory)


@pytest.fixture(scope="module")
def years_model(tmp_path_factory):
    return _named_model(tmp_path_factory.mktemp("model") / "years", ("1999", "2000", "2001"))


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    return _named_model(tmp_path_factory.mktemp("model") / "digits", ("1", "2", "3"))


def test_numeric_class_names_are_names_first(years_model, digits_model):
    pipe = MaskGIT.from_pretrained(years_model)
    assert pipe.resolve_labels(["2001", "1999"]).tolist() == [2, 0]  # a year is the class of that name
    assert pipe.resolve_labels(["0", "2"]).tolist() == [0, 2]  # no class is called "0" or "2": indices
    assert pipe.resolve_labels([1]).tolist() == [1]  # Python integers are indices
    digits = MaskGIT.from_pretrained(digits_model)
    assert digits.resolve_labels(["1", "3", "0"]).tolist() == [0, 2, 0]  # "1" is the first class, "0" index 0
    assert digits.resolve_labels("2").tolist() == [1]
    with pytest.raises(ValueError, match="out of range"):
        digits.resolve_labels(["4"])


def test_cli_labels_take_class_names_first(years_model, digits_model, tmp_path):
    assert main(["sample", "--model", str(years_model), "--labels", "2001,0", "--steps", "1", "--no-progress",
                 "--out", str(tmp_path / "s")]) == 0
    assert json.loads((tmp_path / "s" / "sampling.json").read_text())["labels"] == [2, 0]
    assert main(["sample", "--model", str(digits_model), "--steps", "1", "--no-progress",
                 "--out", str(tmp_path / "all")]) == 0  # every class, once each, in order
    assert json.loads((tmp_path / "all" / "sampling.json").read_text())["labels"] == [0, 1, 2]
    image = _png(tmp_path / "in.png", 100)
    outs = {}
    for label in ("1999", "0"):  # a year used to be an index out of range
        out = tmp_path / f"edit-{label}"
        assert main(["edit", str(image), "--model", str(years_model), "--box", "0,0,8,8", "--label", label,
                     "--steps", "3", "--out", str(out)]) == 0
        outs[label] = load_image(out / "in_edit.png", 1)
    assert torch.equal(outs["1999"], outs["0"])  # both class 0
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for command in ("sample", "edit", "inpaint", "outpaint"):
        helps = [a.help for a in sub[command]._actions if a.dest == "labels" and a.help != argparse.SUPPRESS]
        assert helps and all("only when no class has that name" in h for h in helps), (command, helps)


# ------------------------------------------------------------------------------ images too large to decode
@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    root = tmp_path_factory.mktemp("huge")
    return {"bomb": _zero_png(root / "bomb.png", 14000, 14000),  # over Pillow's own DecompressionBombError limit
            "big": _zero_png(root / "big.png", 8000, 8000)}


_MEMORY_SCRIPT = """
import json, resource, sys
from maskgit.data_fit import describe_data
from maskgit.editing_io import load_inputs
from maskgit.evaluation.image_sets import load_image_set
from maskgit.images import load_image

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image, folder = sys.argv[1], sys.argv[2]
messages = []
for call in (lambda: load_image(image, channels=3), lambda: load_inputs([image], 3, 8, True),
             lambda: describe_data(folder), lambda: load_image_set(folder + "/cat")):
    try:
        call()
        messages.append("accepted")
    except ValueError as err:
        messages.append(str(err))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"grown_mb": grown / 1024, "messages": messages}))
"""


@pytest.mark.parametrize("name", ["bomb", "big"])
def test_huge_images_are_refused_from_their_header(huge, name, tmp_path):
    assert 8000 * 8000 > MAX_IMAGE_PIXELS
    folder = _folder(tmp_path / "data")
    (folder / "cat" / "huge.png").symlink_to(huge[name])
    result = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(huge[name]), str(folder)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["grown_mb"] < 200, report  # decoding would take 64M-196M bytes per channel and float copies
    for message in report["messages"]:
        assert "huge.png" in message or name in message, message
        assert f"{MAX_IMAGE_PIXELS:,} pixels" in message and "\n" not in message, message


def test_huge_image_cli_error_is_one_line(huge, years_model, tmp_path, capsys):
    assert main(["inpaint", str(huge["bomb"]), "--mask", str(huge["big"]), "--resize", "--model", str(years_model),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bomb.png" in err and "limit" in err, err


def test_huge_upload_in_the_editor_is_refused_for_its_size(huge):
    from maskgit.app.uploads import Limits, load_upload

    with pytest.raises(ValueError, match=r"more than [\d,]+ pixels; the limit is 4,194,304 pixels"):
        load_upload(huge["bomb"], 1, 8, True, Limits())  # used to say "bomb.png is not an image file"


# ------------------------------------------------------------------------------ non-square inputs with --resize
def test_non_square_resize_is_the_same_centre_crop_for_training_and_editing(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (24, 40, 3)).astype(np.uint8)  # 40 wide, 24 high
    pixels[:, :6] = (255, 0, 0)  # a red band on the left, outside the centre crop
    path = tmp_path / "data" / "a" / "wide.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(pixels).save(path)
    trained, _ = ImageFolderDataset(tmp_path / "data", 16, 3, files=[path])[0]
    edited = load_inputs([path], 3, 16, resize=True)[0]
    assert torch.equal(trained, edited)
    # shorter side scaled (24 -> 16, so 40 -> 27) and the centre kept: the left band (6 -> 4 columns) is cut off
    assert not (edited[0] > 0.95).all(0).any()
    mask = np.zeros((24, 40), np.uint8)
    mask[:, 20:] = 255  # the right half of the same picture
    Image.fromarray(mask).save(tmp_path / "mask.png")
    loaded = load_mask(tmp_path / "mask.png", (16, 16), resize=True)[0, 0]
    assert loaded.shape == (16, 16)
    assert not loaded[:, :9].any() and loaded[:, 9:].all()  # column 20 of 40 -> 13.5 of 27 -> 8.5 of 16
