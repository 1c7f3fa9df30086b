"""Sample dumps: independent of batching, process count and interruptions; `maskgit metrics` on them
with the judge's features and CAS, on digits with a tiny model and a quickly trained judge."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from maskgit import MaskGIT
from maskgit.cli import main
from maskgit.config import ModelConfig
from maskgit.evaluation import sample_dump as dumps
from maskgit.evaluation.image_sets import load_image_set
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = ModelConfig(tokenizer=TOKENIZER_PRESETS["tiny"], transformer=TRANSFORMER_PRESETS["tiny"])
    return MaskGIT.from_config(cfg).save_pretrained(tmp_path_factory.mktemp("model") / "m")


def dump(model_dir, out, **kwargs):
    options = dict(num_per_class=2, seed=3, batch_size=3, steps=3, progress=False, rank=0, world_size=1)
    return dumps.sample_dump(str(model_dir), out, **{**options, **kwargs})


def arrays(path):
    data = np.load(path)
    return data["arr_0"], data["arr_1"]


def test_seeds_and_shards():
    assert dumps.sample_seed(0, 1) != dumps.sample_seed(1, 0) and dumps.sample_seed(5, 7) == dumps.sample_seed(5, 7)
    chunks = dumps.chunk_ranges(10, 3)
    assert chunks == [range(0, 3), range(3, 6), range(6, 9), range(9, 10)]
    assert dumps.shard(chunks, 0, 2) + dumps.shard(chunks, 1, 2) == [chunks[0], chunks[2], chunks[1], chunks[3]]
    assert dumps.balanced_labels(3, 2).tolist() == [0, 0, 1, 1, 2, 2]


def test_samples_do_not_depend_on_batching(model_dir):
    pipe = MaskGIT.from_pretrained(model_dir)
    labels = dumps.balanced_labels(10, 1)
    whole = dumps.generate_samples(pipe, range(0, 7), labels, seed=1, steps=3)
    pieces = np.concatenate([dumps.generate_samples(pipe, r, labels, seed=1, steps=3) for r in (range(0, 2),
                                                                                                range(2, 7))])
    assert np.array_equal(whole, pieces)
    assert not np.array_equal(whole, dumps.generate_samples(pipe, range(0, 7), labels, seed=2, steps=3))


def test_two_process_dump_equals_one_process_dump(model_dir, tmp_path):
    one = dump(model_dir, tmp_path / "one.npz")
    # Two processes, run one after the other: rank 1 makes its chunks, rank 0 its own and joins them.
    assert dump(model_dir, tmp_path / "two.npz", rank=1, world_size=2) is None
    two = dump(model_dir, tmp_path / "two.npz", rank=0, world_size=2)
    (a, la), (b, lb) = arrays(one), arrays(two)
    assert a.shape == (20, 8, 8, 1) and a.dtype == np.uint8 and np.array_equal(a, b) and np.array_equal(la, lb)
    assert la.tolist() == np.repeat(np.arange(10), 2).tolist()
    settings = json.loads((tmp_path / "two.json").read_text())
    assert settings["world_size"] == 2 and settings["sampling"]["steps"] == 3 and settings["seed"] == 3
    assert not (tmp_path / "two.parts").exists()


def test_resume_after_a_kill_equals_an_uninterrupted_dump(model_dir, tmp_path, monkeypatch):
    reference = arrays(dump(model_dir, tmp_path / "ref.npz"))
    real_generate, calls = dumps.generate_samples, []

    def killed_after_three(*args, **kwargs):
        calls.append(args[1])
        if len(calls) > 3:
            raise KeyboardInterrupt  # as if the process were killed here
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(dumps, "generate_samples", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        dump(model_dir, tmp_path / "d.npz")
    assert len(list((tmp_path / "d.parts").glob("chunk-*.npz"))) == 3 and not (tmp_path / "d.npz").exists()
    with pytest.raises(ValueError, match="other settings"):
        dump(model_dir, tmp_path / "d.npz", seed=4)
    monkeypatch.setattr(dumps, "generate_samples", real_generate)
    calls.clear()
    resumed = arrays(dump(model_dir, tmp_path / "d.npz"))
    assert all(np.array_equal(x, y) for x, y in zip(reference, resumed))


def test_cli_dump_pngs_and_overwrite_protection(model_dir, tmp_path, capsys):
    argv = ["sample-dump", "--model", str(model_dir), "--num-per-class", "1", "--steps", "2", "--out",
            str(tmp_path / "d.npz"), "--png-dir", str(tmp_path / "png"), "--no-progress"]
    assert main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "png").iterdir())[:2] == ["000000_class0.png", "000001_class1.png"]
    assert main(argv) == 2 and "exist" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
    assert main(argv[:-4] + [str(tmp_path / "x.png")]) == 2 and ".npz" in capsys.readouterr().err


@pytest.fixture(scope="module")
def digits_setup(tmp_path_factory, model_dir):
    from maskgit.evaluation.classifier import Classifier, ClassifierConfig, save_classifier

    root = tmp_path_factory.mktemp("digits")
    torch.manual_seed(0)
    save_classifier(Classifier(ClassifierConfig(image_size=8)), root / "judge")  # untrained: features suffice
    assert main(["reference-batch", "--data", "digits", "--split", "test", "--out", str(root / "test.npz")]) == 0
    assert main(["reference-batch", "--data", "digits", "--split", "trainval", "--num", "130", "--out",
                 str(root / "train.npz")]) == 0
    dump(model_dir, root / "dump.npz", num_per_class=13, batch_size=65, steps=2)
    return root


def test_metrics_with_judge_features_and_cas(digits_setup, capsys):
    root = digits_setup
    out = root / "m.json"
    assert main(["metrics", str(root / "dump.npz"), "--ref", str(root / "test.npz"), "--baseline",
                 str(root / "train.npz"), "--features", f"classifier:{root / 'judge'}", "--cas", "--cas-epochs", "15",
                 "--cache-dir", str(root / "cache"), "--out", str(out)]) == 0
    assert "CAS top-1" in capsys.readouterr().out
    r = json.loads(out.read_text())
    g, b = r["generated"], r["baseline"]
    assert g["num_images"] == 130 and b["num_images"] == 130 and r["reference"]["num_images"] > 100
    assert b["frechet_distance"] < g["frechet_distance"]  # real training digits are closer than an untrained model
    assert 0 <= b["class_agreement"] <= 1 and 0 <= g["class_agreement"] <= 1
    assert r["dump"]["settings"]["num_per_class"] == 13 and r["features"]["weights_sha256"]
    assert set(r["cas"]["generated"]) == {"top1", "top5"} and r["cas"]["real"]["top1"] > r["cas"]["generated"]["top1"]
    assert r["cas"]["num_train"] == 130 and (root / "m.png").is_file()
    # The cached statistics are a valid REF and give the same Frechet distance.
    assert main(["metrics", str(root / "dump.npz"), "--ref", r["reference"]["cache"], "--features",
                 f"classifier:{root / 'judge'}", "--no-cache", "--out", str(root / "m2.json")]) == 0
    again = json.loads((root / "m2.json").read_text())["generated"]
    assert again["frechet_distance"] == pytest.approx(g["frechet_distance"], rel=1e-9)
    assert again["precision"] == pytest.approx(g["precision"])


@pytest.mark.parametrize("extra,message", [
    (["--features", "resnet"], "unknown --features"),
    (["--features", "classifier:fashion-mnist-classifier"], "need 28x28x1"),
    (["--features", "inception"], "--inception-weights"),
    (["--cas"], "--baseline"),
])
def test_metrics_errors(digits_setup, capsys, extra, message):
    root = digits_setup
    argv = ["metrics", str(root / "dump.npz"), "--ref", str(root / "test.npz"), "--out", str(root / "e.json"),
            "--features", f"classifier:{root / 'judge'}", "--no-cache"]
    assert main(argv + extra) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow  # two Python processes under accelerate: ~20 s on 2 shared cores
def test_accelerate_launch_two_processes(model_dir, tmp_path):
    one = dump(model_dir, tmp_path / "one.npz", steps=2)
    env = {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                    "-m", "maskgit.cli", "sample-dump", "--model", str(model_dir), "--num-per-class", "2",
                    "--seed", "3", "--batch-size", "3", "--steps", "2", "--out", str(tmp_path / "two.npz"),
                    "--no-progress"], check=True, env=env, capture_output=True)
    assert all(np.array_equal(x, y) for x, y in zip(arrays(one), arrays(tmp_path / "two.npz")))
    assert json.loads((tmp_path / "two.json").read_text())["world_size"] == 2
    assert load_image_set(tmp_path / "two.npz").labels.tolist() == np.repeat(np.arange(10), 2).tolist()
