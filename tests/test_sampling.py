"""`maskgit sample` on a saved tiny model: batches of any size give the same images, PNGs are streamed, the grid is
capped, the decoding history is kept only with --show-steps; the generator semantics of `MaskGIT.generate`."""
import json

import pytest
import torch
from PIL import Image

from maskgit import MaskGIT
from maskgit.cli import main
from maskgit.config import ModelConfig
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS
from maskgit.sampling import GRID_COLUMNS, grid_indices


@pytest.fixture(scope="module")
def pipe_and_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = ModelConfig(tokenizer=TOKENIZER_PRESETS["tiny"], transformer=TRANSFORMER_PRESETS["tiny"])
    pipe = MaskGIT.from_config(cfg).eval()
    return pipe, pipe.save_pretrained(tmp_path_factory.mktemp("model") / "m")


def test_images_do_not_depend_on_the_batch_size(pipe_and_dir, tmp_path):
    _, model = pipe_and_dir
    common = ["sample", "--model", str(model), "--labels", "1,4", "--num", "5", "--steps", "3", "--no-progress"]
    assert main([*common, "--batch-size", "3", "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--batch-size", "10", "--out", str(tmp_path / "b")]) == 0
    names = sorted(p.name for p in (tmp_path / "a").glob("0*.png"))
    assert len(names) == 10 and not (tmp_path / "a" / "steps.png").exists()
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    meta = json.loads((tmp_path / "a" / "sampling.json").read_text())
    assert meta["batch_size"] == 3 and "1000003" in meta["generators"]


def test_grid_is_capped_and_steps_cover_the_first_images(pipe_and_dir, tmp_path):
    _, model = pipe_and_dir
    assert main(["sample", "--model", str(model), "--labels", "0,1", "--num", "20", "--steps", "2", "--batch-size",
                 "7", "--show-steps", "--no-progress", "--out", str(tmp_path / "s")]) == 0
    assert len(list((tmp_path / "s").glob("0*.png"))) == 40
    grid = Image.open(tmp_path / "s" / "grid.png")
    assert grid.size == (2 + GRID_COLUMNS * (8 + 2), 2 + 2 * (8 + 2))  # 16 of the 20 per label, one row per label
    steps = Image.open(tmp_path / "s" / "steps.png")
    assert steps.size == (2 + 2 * 10, 2 + 7 * 10)  # the first batch (7 images) x 2 steps


def test_grid_indices():
    shown, nrow = grid_indices(10_000, 1000)
    assert nrow == GRID_COLUMNS and len(shown) == 10 * GRID_COLUMNS and 1000 in shown and 16 not in shown
    shown, nrow = grid_indices(5, None)
    assert shown == set(range(5)) and nrow == 3


def test_generate_docstring_generator_forms(pipe_and_dir):
    pipe, _ = pipe_and_dir
    assert "list of B generators" in MaskGIT.generate.__doc__
    pair = pipe.generate([0, 3], generator=[torch.Generator().manual_seed(s) for s in (7, 8)], steps=4)
    one = pipe.generate([0], generator=[torch.Generator().manual_seed(7)], steps=4)
    # Per-image generators: the same tokens whatever the batch; pixels up to float rounding of batched convolutions.
    assert torch.allclose(pair[0], one[0], atol=1e-5)
    single = [pipe.generate([0] * b, generator=torch.Generator().manual_seed(7), steps=4)[0] for b in (1, 8)]
    assert not torch.equal(*single)  # one generator: image 0 depends on the batch size
