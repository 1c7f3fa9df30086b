"""The browser editor's callbacks without a browser, on a saved tiny model: uploads, masks, limits, results,
downloads, and reproduction of a run from its settings (the same callback, and the `maskgit` command)."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskgit import MaskGIT
from maskgit.app.callbacks import UNCONDITIONAL, Callbacks
from maskgit.app.uploads import Limits, mask_from_layers
from maskgit.cli import main
from maskgit.config import ModelConfig
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS

SAMPLING = dict(steps=4, schedule="cosine", temperature=1.0, choice_temperature=4.5, guidance_scale=0.0,
                guidance_schedule="constant")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = ModelConfig(tokenizer=TOKENIZER_PRESETS["tiny"], transformer=TRANSFORMER_PRESETS["tiny"],
                      class_names=tuple(f"digit{i}" for i in range(10)))
    return MaskGIT.from_config(cfg).save_pretrained(tmp_path_factory.mktemp("model") / "m")


@pytest.fixture
def cb(model_dir, tmp_path):
    return Callbacks(MaskGIT.from_pretrained(model_dir), tmp_path / "work", model_name=str(model_dir))


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, (8, 8, 1), dtype=np.uint8)


def strokes(cb, box):
    """An editor value whose one layer has the display pixels of `box` (x0, y0, x1, y1) painted."""
    side = 8 * cb.scale
    layer = np.zeros((side, side, 4), dtype=np.uint8)
    x0, y0, x1, y1 = box
    layer[y0:y1, x0:x1] = (255, 59, 48, 255)
    return {"background": np.zeros((side, side, 4), np.uint8), "layers": [layer], "composite": None}


# ---------------------------------------------------------------- uploads
def test_upload_round_trips_pixels(cb, image, tmp_path):
    Image.fromarray(image[..., 0]).save(tmp_path / "x.png")
    assert np.array_equal(cb.load(str(tmp_path / "x.png")), image)
    shown = cb.display(image)
    assert shown.shape == (8 * cb.scale, 8 * cb.scale, 3) and cb.scale == 35
    assert np.array_equal(shown[::cb.scale, ::cb.scale, 0], image[..., 0])  # nearest: blocks of one pixel


@pytest.mark.parametrize("make,message", [
    (lambda p: p.write_text("hello"), "is not an image file"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "is not an image file"),  # corrupt PNG
    (lambda p: Image.new("L", (8, 8)).save(p, format="TIFF"), "is a TIFF file"),
    (lambda p: Image.new("L", (12, 9)).save(p, format="PNG"), "is 12x9 pixels but the model works on 8x8"),
    (lambda p: Image.new("L", (100, 100)).save(p, format="PNG"), "the limit is 4,096 pixels"),
    (lambda p: p.write_bytes(b"\0" * 5000), "the file is 5 KiB; the limit is 4 KiB"),
])
def test_bad_uploads_are_refused_with_a_reason(model_dir, tmp_path, make, message):
    cb = Callbacks(MaskGIT.from_pretrained(model_dir), tmp_path / "w", limits=Limits(max_pixels=4096,
                                                                                      max_upload_bytes=4000))
    make(tmp_path / "upload.png")
    with pytest.raises(ValueError, match=message):
        cb.load(str(tmp_path / "upload.png"))


def test_missing_upload_and_resize(cb, tmp_path):
    with pytest.raises(ValueError, match="no image was uploaded"):
        cb.load(None)
    Image.new("RGB", (16, 12), (255, 255, 255)).save(tmp_path / "wide.png")
    resized = cb.load(str(tmp_path / "wide.png"), resize=True)  # as `maskgit inpaint --resize`
    assert resized.shape == (8, 8, 1) and (resized == 255).all()


def test_strokes_map_to_native_pixels(cb):
    s = cb.scale
    mask = mask_from_layers(strokes(cb, (2 * s + 3, 5 * s, 2 * s + 4, 6 * s + 1)), (8, 8), s)
    assert np.argwhere(mask).tolist() == [[5, 2], [6, 2]]  # any touched block counts
    assert not mask_from_layers(None, (8, 8), s).any()
    with pytest.raises(ValueError, match="load the image again"):
        mask_from_layers({"layers": [np.zeros((10, 10, 4), np.uint8)]}, (8, 8), s)


# ---------------------------------------------------------------- actions
def test_inpaint_changes_only_the_painted_pixels_and_reproduces(cb, image, tmp_path):
    s = cb.scale
    editor = strokes(cb, (2 * s, 2 * s, 5 * s, 4 * s))  # native box x 2..4, y 2..3
    r = cb.inpaint(image, editor, UNCONDITIONAL, 0, 3, **SAMPLING)
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:4, 2:5] = True
    assert np.array_equal(r.mask, mask) and r.images[0].shape == (8, 8, 1)
    assert np.array_equal(r.images[0][~mask], image[~mask])
    # The download folder: PNGs at native size + settings; everything inside the work folder.
    files = {Path(f).name: Path(f) for f in r.files}
    assert sorted(files) == ["input.png", "mask.png", "result.png", "settings.json"]
    assert all(cb.workdir in f.parents for f in files.values())
    assert np.array_equal(np.asarray(Image.open(files["result.png"])), r.images[0][..., 0])
    settings = json.loads(files["settings.json"].read_text())
    assert settings == r.settings and settings["seed"] == 3 and settings["blur_radius"] == 0
    # Same settings, same pixels: through the callback ...
    again = cb.inpaint(image, editor, UNCONDITIONAL, settings["blur_radius"], settings["seed"],
                       **{k: settings[k] for k in SAMPLING})
    assert np.array_equal(again.images[0], r.images[0])
    # ... and through the command written in settings.json, run in the download folder.
    assert run_command(settings["command"], files["result.png"].parent, tmp_path / "cli") == \
        files["result.png"].read_bytes()


def run_command(command: str, folder: Path, out: Path) -> bytes:
    argv = shlex.split(command)
    assert argv[0] == "maskgit"
    argv = [str(folder / a) if a.endswith(".png") else a for a in argv[1:]]
    argv[argv.index("--out") + 1] = str(out)
    assert main(argv) == 0
    return next(p for p in sorted(out.iterdir()) if p.suffix == ".png" and p.name != "grid.png").read_bytes()


def test_default_blend_keeps_pixels_beyond_one_token(cb, image):
    s = cb.scale
    r = cb.inpaint(image, strokes(cb, (0, 0, s, s)), "digit3", cb.factor, 0, **SAMPLING)  # pixel (0, 0)
    keep = np.ones((8, 8), dtype=bool)
    keep[:1 + cb.factor, :1 + cb.factor] = False
    assert np.array_equal(r.images[0][keep], image[keep]) and r.settings["class"] == "digit3"


@pytest.mark.parametrize("editor,message", [(None, "the mask is empty"), ({"layers": []}, "the mask is empty")])
def test_empty_masks_are_refused(cb, image, editor, message):
    with pytest.raises(ValueError, match=message):
        cb.inpaint(image, editor, UNCONDITIONAL, 0, 0, **SAMPLING)
    with pytest.raises(ValueError, match="nothing is drawn"):
        cb.box_from_strokes(image, editor)
    with pytest.raises(ValueError, match="no image yet"):
        cb.inpaint(None, editor, UNCONDITIONAL, 0, 0, **SAMPLING)


def test_outpaint_and_extrapolate_keep_the_original(cb, image):
    r = cb.outpaint(image, "pad", (2, 0, 4, 2), None, UNCONDITIONAL, 0, **SAMPLING)
    assert r.images[0].shape == (10, 14, 1) and r.settings["pad"] == [2, 0, 4, 2]
    assert np.array_equal(r.images[0][:8, 2:10], image) and r.mask.sum() == 10 * 14 - 64
    r = cb.outpaint(image, "width", None, 24, "digit1", 0, **SAMPLING)
    assert r.images[0].shape == (8, 24, 1) and np.array_equal(r.images[0][:, :8], image)
    assert r.settings["task"] == "extrapolate" and "--width 24" in r.settings["command"]


@pytest.mark.parametrize("mode,pad,width,message", [
    ("pad", (1, 0, 0, 0), None, "multiples of the tokenizer factor"),
    ("pad", (0, 0, 18, 0), None, "over the demo limit of 16 pixels"),
    ("pad", (0, 0, -2, 0), None, "whole number >= 0"),
    ("width", None, 9, "multiple of the tokenizer factor"),
    ("width", None, 66, "over the demo limit of 64"),
    ("width", None, None, "target width must be a whole number"),
])
def test_outpaint_errors(cb, image, mode, pad, width, message):
    with pytest.raises(ValueError, match=message):
        cb.outpaint(image, mode, pad, width, UNCONDITIONAL, 0, **SAMPLING)


def test_edit_box_from_strokes_and_errors(cb, image, tmp_path):
    s = cb.scale
    assert cb.box_from_strokes(image, strokes(cb, (s + 1, 2 * s, 3 * s, 3 * s - 1))) == (1, 2, 3, 3)
    r = cb.edit(image, (4, 4, 8, 8), "digit5", 0, 2, **{**SAMPLING, "steps": 6})
    assert r.mask[4:, 4:].all() and r.mask.sum() == 16 and r.settings["box"] == [4, 4, 8, 8]
    keep = np.ones((8, 8), dtype=bool)
    keep[4 - cb.factor:, 4 - cb.factor:] = False  # the blend reaches one token beyond the box
    assert np.array_equal(r.images[0][keep], image[keep])
    files = {Path(f).name: Path(f) for f in r.files}
    assert run_command(r.settings["command"], files["result.png"].parent, tmp_path / "cli") == \
        files["result.png"].read_bytes()
    for box, message in [((0, 0, 9, 8), "outside the 8x8 image"), ((3, 3, 3, 5), "outside the 8x8 image or empty"),
                         ((0, 0, 2.5, 4), "whole number")]:
        with pytest.raises(ValueError, match=message):
            cb.edit(image, box, "digit5", 0, 2, **SAMPLING)
    with pytest.raises(ValueError, match="pick the target class"):
        cb.edit(image, (0, 0, 4, 4), UNCONDITIONAL, 0, 2, **SAMPLING)


def test_generate_grid_steps_and_command(cb, tmp_path):
    r = cb.generate("digit2", 3, 7, **SAMPLING)
    assert len(r.images) == 3 and all(x.shape == (8, 8, 1) for x in r.images)
    assert r.steps.shape == (3 * 10 + 2, 4 * 10 + 2, 1)  # one row per image, one column per step (2 px padding)
    names = sorted(Path(f).name for f in r.files)
    assert names == ["0000_digit2.png", "0001_digit2.png", "0002_digit2.png", "grid.png", "settings.json", "steps.png"]
    again = cb.generate("digit2", 3, 7, **SAMPLING)
    assert all(np.array_equal(a, b) for a, b in zip(r.images, again.images))
    folder = Path(r.files[0]).parent
    assert run_command(r.settings["command"], folder, tmp_path / "cli") == (folder / "0000_digit2.png").read_bytes()


@pytest.mark.parametrize("change,message", [
    ({"steps": 0}, "steps must be a whole number from 1 to 64"),
    ({"steps": 2.5}, "steps must be a whole number"),
    ({"temperature": float("nan")}, "temperature must be a finite number"),
    ({"choice_temperature": -1.0}, "choice temperature must be a finite number >= 0"),
    ({"guidance_scale": None}, "guidance scale is empty"),
    ({"schedule": "zigzag"}, "unknown mask schedule"),
])
def test_bad_settings_are_refused(cb, change, message):
    with pytest.raises(ValueError, match=message):
        cb.generate("digit0", 1, 0, **{**SAMPLING, **change})


@pytest.mark.parametrize("args,message", [
    (("digit0", 0, 0), "number of images must be from 1 to 16"),
    (("digit0", 17, 0), "number of images must be from 1 to 16"),
    (("jacket", 1, 0), "unknown class 'jacket'"),
    (("digit0", 1, -1), "seed must be a whole number"),
    (("digit0", 1, float("inf")), "seed must be a whole number"),
    (("digit0", float("nan"), 0), "number of images must be from 1 to 16"),
])
def test_bad_generation_requests(cb, args, message):
    with pytest.raises(ValueError, match=message):
        cb.generate(*args, **SAMPLING)


# ---------------------------------------------------------------- the page and the command
def test_import_maskgit_does_not_import_gradio():
    code = "import sys, maskgit, maskgit.cli, maskgit.app; assert 'gradio' not in sys.modules, 'gradio imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_build_app_has_every_tab_and_a_queue_of_one(model_dir, tmp_path):
    pytest.importorskip("gradio")
    from maskgit.app import build_app

    demo = build_app(MaskGIT.from_pretrained(model_dir), workdir=tmp_path / "w")
    labels = {getattr(b, "label", None) for b in demo.blocks.values()}
    assert {"Generate", "Inpaint", "Outpaint / extrapolate", "Edit a class"} <= labels
    assert demo._queue.default_concurrency_limit == 1
    assert demo.maskgit_callbacks.workdir == tmp_path / "w"


@pytest.mark.parametrize("argv,message", [(["--port", "0"], "--port must be from 1 to 65535"),
                                          (["--threads", "0"], "--threads must be >= 1"),
                                          (["--max-upload-mb", "0"], "--max-upload-mb must be > 0")])
def test_serve_argument_errors(argv, message, capsys):
    assert main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err


def test_serve_with_a_missing_model_fails_cleanly(tmp_path, monkeypatch, capsys):
    for key in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED", "MPLCONFIGDIR"):
        monkeypatch.setenv(key, "unset")  # serve sets them; restored after the test
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert main(["serve", "--model", str(tmp_path / "nope"), "--port", "7999"]) == 2
    assert "is neither a bundled model" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # its temporary folder is gone


def test_gradio_is_imported_without_its_stub_generator_and_the_import_hook_is_removed():
    """The start-up fix of `maskgit serve`: Gradio's per-class .pyi rewriting is skipped, nothing else."""
    code = ("import sys; from maskgit.app.gradio_import import import_gradio, _no_stub; gr = import_gradio(); "
            "import gradio.component_meta as cm; "
            "print(cm.create_or_modify_pyi is _no_stub, import_gradio() is gr, "
            "any(type(f).__name__ == '_SkipStubs' for f in sys.meta_path), callable(gr.Blocks))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False", "True"]
