"""Image input never silently changes content: 16-bit, palette, LA and RGBA files give the pixels of their 8-bit
grey/RGB equivalents (within 1/255), through the CLI editing path and through the training data loader; what
cannot be read exactly is refused with the reason."""
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from maskgit import MaskGIT
from maskgit.cli import main
from maskgit.config import ModelConfig
from maskgit.data import ImageFolderDataset
from maskgit.data_fit import describe_data
from maskgit.images import load_image
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS

RNG = np.random.default_rng(0)
SIZE = 8


def png16(path, values: np.ndarray) -> None:
    """Write a 16-bit grey (H, W) or RGB (H, W, 3) PNG by hand (Pillow cannot write 16-bit colour)."""
    h, w = values.shape[:2]
    colour_type = 2 if values.ndim == 3 else 0
    raw = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def _alpha():
    alpha = RNG.integers(0, 256, (SIZE, SIZE))
    alpha[:2] = 255  # some opaque, some transparent pixels
    alpha[-1] = 0
    return alpha


def case_16bit_grey(path):
    v = RNG.integers(0, 65536, (SIZE, SIZE)).astype(np.uint16)
    Image.fromarray(v).save(path)  # mode I;16
    return np.round(v / 257.0)[..., None], 1


def case_16bit_rgb(path):
    v = RNG.integers(0, 65536, (SIZE, SIZE, 3)).astype(np.uint16)
    png16(path, v)
    return np.round(v / 257.0), 3


def case_palette_rgb(path):
    rgb = RNG.integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)
    image = Image.fromarray(rgb).quantize(16)
    image.save(path)
    return np.asarray(image.convert("RGB")).astype(float), 3


def case_palette_grey(path):
    levels = RNG.integers(0, 256, 16)
    index = RNG.integers(0, 16, (SIZE, SIZE)).astype(np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette([int(v) for level in levels for v in (level, level, level)])
    image.save(path)
    return levels[index][..., None].astype(float), 1


def case_la(path):
    grey, alpha = RNG.integers(0, 256, (SIZE, SIZE)), _alpha()
    Image.fromarray(np.stack([grey, alpha], -1).astype(np.uint8), "LA").save(path)
    return np.round(grey * alpha / 255.0)[..., None], 1  # composited on black


def case_rgba(path):
    rgb, alpha = RNG.integers(0, 256, (SIZE, SIZE, 3)), _alpha()
    Image.fromarray(np.concatenate([rgb, alpha[..., None]], -1).astype(np.uint8), "RGBA").save(path)
    return np.round(rgb * alpha[..., None] / 255.0), 3


CASES = {f.__name__[5:]: f for f in (case_16bit_grey, case_16bit_rgb, case_palette_rgb, case_palette_grey, case_la,
                                     case_rgba)}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    out = {}
    for channels, name in ((1, "tiny"), (3, "tiny-rgb")):
        cfg = ModelConfig(tokenizer=TOKENIZER_PRESETS[name], transformer=TRANSFORMER_PRESETS["tiny"])
        out[channels] = MaskGIT.from_config(cfg).save_pretrained(tmp_path_factory.mktemp("model") / name)
    return out


def _equivalent(tmp_path, case):
    path = tmp_path / "in" / f"{case}.png"
    path.parent.mkdir(exist_ok=True)
    expected, channels = CASES[case](path)
    return path, torch.from_numpy(expected / 255.0).permute(2, 0, 1).float(), channels


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_reads_the_pixels_of_the_8bit_equivalent(case, models, tmp_path, capsys):
    path, expected, channels = _equivalent(tmp_path, case)
    # Outpainting keeps the original area bit-exact, so the output's left part is the input as the CLI read it.
    assert main(["outpaint", str(path), "--pad", "0,0,2,0", "--model", str(models[channels]), "--steps", "2",
                 "--out", str(tmp_path / "o")]) == 0
    written = load_image(tmp_path / "o" / f"{case}_outpaint.png", channels=channels)
    assert written.shape == (channels, SIZE, SIZE + 2)
    assert (written[..., :SIZE] - expected).abs().max() <= 1 / 255 + 1e-6
    if case in ("la", "rgba"):
        assert "composited on a black background" in capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(CASES))
def test_training_loader_reads_the_pixels_of_the_8bit_equivalent(case, tmp_path):
    path, expected, channels = _equivalent(tmp_path, case)
    image, _ = ImageFolderDataset(tmp_path, SIZE, channels, files=[path])[0]
    assert (image - expected).abs().max() <= 1 / 255 + 1e-6
    assert (load_image(path, channels) - expected).abs().max() <= 1 / 255 + 1e-6


def test_16bit_grey_is_not_read_as_white(tmp_path):
    Image.fromarray(np.full((4, 4), 32768, np.uint16)).save(tmp_path / "mid.png")
    assert load_image(tmp_path / "mid.png", 1).mean().item() == pytest.approx(32768 / 65535)


def test_folder_inspection_sees_grey_palettes_and_alpha(tmp_path):
    for case in ("palette_grey", "la", "16bit_grey"):
        (tmp_path / "a").mkdir(exist_ok=True)
        CASES[case](tmp_path / "a" / f"{case}.png")
    info = describe_data(str(tmp_path))
    assert info.channels == 1 and info.with_alpha == 1
    case_palette_rgb(tmp_path / "a" / "colour.png")
    assert describe_data(str(tmp_path)).channels == 3


def test_what_cannot_be_read_exactly_is_refused(models, tmp_path, capsys):
    files = {"colour": tmp_path / "colour.png", "cmyk": tmp_path / "cmyk.jpg", "frames": tmp_path / "frames.gif",
             "int32": tmp_path / "int32.tif"}
    Image.fromarray(RNG.integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)).save(files["colour"])
    Image.new("CMYK", (SIZE, SIZE), (10, 20, 30, 40)).save(files["cmyk"])
    frames = [Image.new("L", (SIZE, SIZE), v) for v in (0, 255)]
    frames[0].save(files["frames"], save_all=True, append_images=frames[1:])
    Image.fromarray(np.full((SIZE, SIZE), 70000, np.int32)).save(files["int32"])
    reasons = {"colour": "colour pixels", "cmyk": "CMYK", "frames": "2 frames", "int32": "32-bit integer"}
    for name, path in files.items():
        assert main(["inpaint", str(path), "--mask", str(path), "--model", str(models[1]), "--out",
                     str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert reasons[name] in err and "Traceback" not in err, err
    grey = tmp_path / "grey.png"  # an RGB file whose channels are equal is grey, read exactly
    Image.fromarray(np.repeat(RNG.integers(0, 256, (SIZE, SIZE, 1)), 3, -1).astype(np.uint8)).save(grey)
    assert load_image(grey, 1).shape == (1, SIZE, SIZE)
