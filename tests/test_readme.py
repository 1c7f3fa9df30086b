"""The README's examples run as written: the Python blocks (with the bundled model), and the own-images worked
example, command by command, on a small RGB folder of two image sizes with tiny step counts."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskgit.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
OWN_IMAGES = TEXT[TEXT.index("## Training on your own images"):]
OWN_IMAGES = re.search(r"```bash\n(.*?)```", OWN_IMAGES, flags=re.S).group(1)
TINY = {r"--epochs \d+": "--epochs 1", r"--num \d+": "--num 2", r"--num-per-class \d+": "--num-per-class 2"}


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write files (save_pretrained)
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {})


def own_images_commands() -> list[str]:
    """The worked example's command lines, continuation lines joined and step counts made tiny."""
    lines = OWN_IMAGES.replace("\\\n", " ").splitlines()
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in lines if line.strip() and not line.startswith("#")]
    for pattern, tiny in TINY.items():
        commands = [re.sub(pattern, tiny, c) for c in commands]
    return commands


def make_folder(root: Path) -> None:
    """cat/ and dog/ subfolders of RGB PNGs, mostly 32x32, every fourth 48x48; a coloured disc or square."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(12):
            size = 48 if i % 4 == 3 else 32
            yy, xx = np.mgrid[:size, :size] / size - 0.5
            shape = yy ** 2 + xx ** 2 < 0.09 if c == 0 else (abs(yy) < 0.3) & (abs(xx) < 0.3)
            pixels = np.where(shape[..., None], rng.uniform(0.4, 1, 3), 0.1) + rng.normal(0, 0.03, (size, size, 3))
            Image.fromarray((pixels.clip(0, 1) * 255).astype(np.uint8)).save(root / name / f"{i:03d}.png")


def test_own_images_commands_are_found():
    commands = own_images_commands()
    names = [c.split()[1] for c in commands if c.startswith("maskgit ")]
    assert names == ["presets", "train-tokenizer", "eval-tokenizer", "train", "sample", "inpaint", "outpaint", "edit",
                     "train-classifier", "evaluate", "evaluate-editing"]
    assert not any("--config" in c or "--preset" in c for c in commands)  # no hand-written config


@pytest.mark.slow
def test_readme_own_images_example_runs_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_folder(tmp_path / "my_images")
    for command in own_images_commands():
        argv = shlex.split(command)
        if argv[0] == "maskgit":
            assert main(argv[1:]) == 0, f"{command}\n{capsys.readouterr().err[-2000:]}"
        else:
            assert argv[0] == "python", command
            subprocess.run([sys.executable, *argv[1:]], check=True)
    out = capsys.readouterr().out
    assert "nearest preset rgb-32" in out and "resizing 6 of 24 images" in out and "plan: 1 steps" in out
    expected = ["runs/tok/final/tokenizer.safetensors", "results/tok.json", "results/tok.png",
                "runs/tf/final/config.json", "runs/tf/final/transformer.safetensors", "samples/grid.png",
                "samples/0000_cat.png", "samples/0003_dog.png", "samples/sampling.json", "edits/000_inpaint.png",
                "edits/000_outpaint.png", "edits/000_edit.png", "runs/judge/classifier.safetensors",
                "results/my_images.json", "results/my_images.png", "results/my_images_editing.json",
                "results/my_images_editing.png"]
    assert not [p for p in expected if not (tmp_path / p).is_file()]
    assert Image.open(tmp_path / "edits/000_outpaint.png").size == (48, 32)
    assert Image.open(tmp_path / "samples/0000_cat.png").mode == "RGB"
