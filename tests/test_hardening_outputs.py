"""Outputs and metrics that must never be silently wrong: no writes into model directories, settings JSON that
describe every PNG beside them and every option that made them, ADM reference statistics used for FID, the IS
shuffle seeded by --seed, and a warning on distribution metrics from fewer than 1,000 images."""
import json

import numpy as np
import pytest
import torch

from maskgit import MaskGIT
from maskgit.bundled import PRETRAINED_DIR
from maskgit.cli import main
from maskgit.config import ModelConfig
from maskgit.evaluation.classifier import Classifier, ClassifierConfig, save_classifier
from maskgit.evaluation.features import load_extractor
from maskgit.evaluation.frechet import feature_statistics, frechet_distance
from maskgit.evaluation.image_sets import save_batch
from maskgit.evaluation.inception_score import inception_score
from maskgit.images import save_image
from maskgit.outputs import check_output_dir, check_writable
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS
from maskgit.vq import save_tokenizer


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """A tiny model, its tokenizer alone, and an untrained 8x8 judge, each saved as the commands save them."""
    root = tmp_path_factory.mktemp("dirs")
    torch.manual_seed(0)
    cfg = ModelConfig(tokenizer=TOKENIZER_PRESETS["tiny"], transformer=TRANSFORMER_PRESETS["tiny"],
                      class_names=tuple(f"digit{i}" for i in range(10)))
    pipe = MaskGIT.from_config(cfg)
    model = pipe.save_pretrained(root / "model")
    save_tokenizer(pipe.tokenizer, root / "tokenizer")
    save_classifier(Classifier(ClassifierConfig(image_size=8)), root / "judge")
    return {"model": model, "tokenizer": root / "tokenizer", "judge": root / "judge"}


def listing(directory):
    return sorted((p.relative_to(directory).as_posix(), p.stat().st_mtime_ns) for p in directory.rglob("*"))


# The inputs do not exist: a refusal that comes first proves it comes before any loading or sampling.
COMMANDS = {
    "sample": lambda out, x: ["sample", "--model", x, "--out", out],
    "inpaint": lambda out, x: ["inpaint", f"{x}/a.png", "--mask", f"{x}/m.png", "--model", x, "--out", out],
    "outpaint": lambda out, x: ["outpaint", f"{x}/a.png", "--pad", "1,1,1,1", "--model", x, "--out", out],
    "edit": lambda out, x: ["edit", f"{x}/a.png", "--box", "0,0,4,4", "--label", "1", "--model", x, "--out", out],
    "sample-dump": lambda out, x: ["sample-dump", "--model", x, "--num-per-class", "1", "--out", f"{out}/d.npz"],
    "evaluate": lambda out, x: ["evaluate", "--model", x, "--classifier", x, "--data", x, "--out", f"{out}/r.json"],
    "evaluate-editing": lambda out, x: ["evaluate-editing", "--model", x, "--classifier", x, "--data", x,
                                        "--out", f"{out}/r.json"],
    "metrics": lambda out, x: ["metrics", f"{x}/d.npz", "--ref", f"{x}/r.npz", "--out", f"{out}/r.json"],
    "eval-tokenizer": lambda out, x: ["eval-tokenizer", "--tokenizer", x, "--data", x, "--out", f"{out}/r.json"],
    "reference-batch": lambda out, x: ["reference-batch", "--data", x, "--out", f"{out}/r.npz"],
    "train": lambda out, x: ["train", "--tokenizer", x, "--data", x, "--out", out],
    "train-tokenizer": lambda out, x: ["train-tokenizer", "--data", x, "--out", out],
    "train-classifier": lambda out, x: ["train-classifier", "--data", x, "--out", out],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("where", ["model", "model/sub", "tokenizer", "judge", "bundled"])
def test_no_command_writes_into_a_model_directory(dirs, tmp_path, capsys, command, where):
    if where == "bundled":
        target = PRETRAINED_DIR / "fashion-mnist"
    else:
        name, _, sub = where.partition("/")
        target = dirs[name] / sub if sub else dirs[name]
    if where == "judge" and command == "train-classifier":
        target = dirs["judge"] / "sub"  # train-classifier may replace a judge in place (--overwrite), not nest one
    guarded = target if target.is_dir() else target.parent
    before = listing(guarded)
    assert main(COMMANDS[command](str(target), str(tmp_path / "missing"))) == 2
    err = capsys.readouterr().err
    assert "write outputs elsewhere" in err and "missing" not in err, err
    assert listing(guarded) == before


def test_the_bundled_models_folder_and_every_weight_kind_are_guarded(dirs, tmp_path):
    with pytest.raises(ValueError, match="bundled models"):
        check_output_dir(PRETRAINED_DIR)
    with pytest.raises(ValueError, match="bundled models"):  # convert-official's check: a new model beside them
        check_writable([PRETRAINED_DIR / ".new-model.write-check"], overwrite=True)
    for name, kind in (("model", "model"), ("tokenizer", "tokenizer"), ("judge", "classifier")):
        with pytest.raises(ValueError, match=f"{kind} directory"):
            check_writable([dirs[name] / "x.png"], overwrite=True)
    check_writable([dirs["judge"] / "classifier.json"], overwrite=True, replacing="classifier")  # train-classifier
    with pytest.raises(ValueError, match="model directory"):
        check_writable([dirs["model"] / "classifier.json"], overwrite=True, replacing="classifier")
    check_output_dir(tmp_path / "runs" / "new")  # ordinary folders stay writable


def test_overwrite_never_leaves_pngs_that_the_settings_json_does_not_describe(dirs, tmp_path, capsys):
    out = tmp_path / "s"
    common = ["sample", "--model", str(dirs["model"]), "--labels", "0", "--steps", "2", "--no-progress",
              "--out", str(out)]
    assert main(common + ["--num", "3", "--show-steps"]) == 0
    before = listing(out)
    assert main(common + ["--num", "1", "--overwrite", "--seed", "5"]) == 2
    err = capsys.readouterr().err
    assert "3 sample file(s)" in err and "0001_digit0.png" in err and "steps.png" in err and "remove" in err, err
    assert listing(out) == before  # refused before any work: nothing replaced
    assert main(common + ["--num", "3", "--show-steps", "--overwrite", "--seed", "5"]) == 0
    meta = json.loads((out / "sampling.json").read_text())
    assert sorted(meta["files"]) == sorted(p.name for p in out.glob("*.png")) and meta["seed"] == 5


def test_editing_settings_go_beside_each_output_and_survive_later_runs(dirs, tmp_path):
    a, b = (save_image(torch.rand(1, 8, 8), tmp_path / f"{n}.png") for n in "ab")
    out = tmp_path / "o"
    common = ["--pad", "2,0,2,0", "--model", str(dirs["model"]), "--steps", "2", "--out", str(out)]
    assert main(["outpaint", str(a), *common]) == 0
    assert main(["outpaint", str(b), *common, "--seed", "3"]) == 0  # another image into the same folder
    first = json.loads((out / "a_outpaint.json").read_text())
    second = json.loads((out / "b_outpaint.json").read_text())
    assert first["inputs"] == [str(a)] and first["seed"] == 0
    assert second["inputs"] == [str(b)] and second["seed"] == 3


def test_resize_and_every_editing_option_are_recorded(dirs, tmp_path):
    big = save_image(torch.rand(1, 16, 16), tmp_path / "big.png")
    mask = save_image(torch.ones(1, 16, 16), tmp_path / "mask.png")
    assert main(["inpaint", str(big), "--mask", str(mask), "--resize", "--blur-radius", "1", "--model",
                 str(dirs["model"]), "--steps", "2", "--out", str(tmp_path / "o")]) == 0
    meta = json.loads((tmp_path / "o" / "big_inpaint.json").read_text())
    assert meta["resize"] is True and meta["mask"] == str(mask) and meta["overrides"]["blur_radius"] == 1
    assert meta["device"] == "cpu" and meta["sampling"]["steps"] == 2 and meta["output"] == "big_inpaint.png"


def test_evaluate_records_its_data_options_and_warns_under_1000_images(dirs, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["evaluate", "--model", str(dirs["model"]), "--classifier", str(dirs["judge"]), "--data", "digits",
                 "--num-per-class", "1", "--steps", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["data"] == "digits" and r["resize"] is False and r["num_per_class"] == 1
    assert r["classifier"] == str(dirs["judge"]) and r["data_root"] is None
    assert r["warnings"] and "10 generated" in r["warnings"][0] and "1,000" in r["warnings"][0]
    assert "warning:" in printed and "10 generated" in printed


@pytest.fixture(scope="module")
def sets(dirs, tmp_path_factory):
    """Random 8x8 grey dump and reference images, and the judge's features of the dump."""
    root = tmp_path_factory.mktemp("sets")
    rng = np.random.default_rng(0)
    dump, ref = (rng.integers(0, 256, size=(n, 8, 8, 1), dtype=np.uint8) for n in (40, 30))
    save_batch(root / "dump.npz", dump, np.arange(40) % 10)
    extractor = load_extractor(f"classifier:{dirs['judge']}")
    feats, probs = extractor(dump, progress=False)
    return root, dump, ref, feats, probs


def run_metrics(dirs, root, ref, out, *extra):
    return main(["metrics", str(root / "dump.npz"), "--ref", str(ref), "--features", f"classifier:{dirs['judge']}",
                 "--out", str(out), *extra])


def test_adm_reference_with_images_and_statistics_uses_its_statistics_for_fid(dirs, sets, capsys):
    root, _, ref_images, feats, _ = sets
    mu, sigma = np.full(128, 0.25), np.eye(128) * 0.5  # the judge's features are 128-d
    np.savez(root / "adm.npz", arr_0=ref_images, mu=mu, sigma=sigma)  # as ADM's VIRTUAL_imagenet256 batches
    for run, extra in enumerate([[], []]):  # the second run reads the cached image features
        out = root / f"adm{run}.json"
        assert run_metrics(dirs, root, root / "adm.npz", out, "--cache-dir", str(root / "cache"), *extra) == 0
        r = json.loads(out.read_text())
        assert r["generated"]["frechet_distance"] == pytest.approx(frechet_distance(*feature_statistics(feats),
                                                                                    mu, sigma), rel=1e-9)
        assert r["reference"]["frechet_from"] == "mu/sigma of the file"
        assert r["reference"]["kind"] == "images and statistics" and r["generated"]["precision"] is not None
        assert r["reference"]["inception_score"] is not None  # IS and precision / recall from its images
    assert r["reference"]["cache"]


def test_adm_statistics_of_another_feature_dimension_fall_back_to_the_images(dirs, sets, capsys):
    root, _, ref_images, feats, _ = sets
    ref_feats, _ = load_extractor(f"classifier:{dirs['judge']}")(ref_images, progress=False)
    np.savez(root / "adm5.npz", arr_0=ref_images, mu=np.zeros(5), sigma=np.eye(5))  # not the judge's 128-d
    assert run_metrics(dirs, root, root / "adm5.npz", root / "adm5.json", "--no-cache") == 0
    r = json.loads((root / "adm5.json").read_text())
    expected = frechet_distance(*feature_statistics(feats), *feature_statistics(ref_feats))
    assert r["generated"]["frechet_distance"] == pytest.approx(expected, rel=1e-9)
    assert r["reference"]["frechet_from"] == "features of the images" and "5-d" in r["reference"]["note"]


def test_inception_score_takes_the_seed_and_the_splits_on_both_sets(dirs, sets, capsys):
    root, _, ref_images, _, probs = sets
    save_batch(root / "ref.npz", ref_images)
    assert run_metrics(dirs, root, root / "ref.npz", root / "is.json", "--no-cache", "--seed", "7",
                       "--is-splits", "3") == 0
    r = json.loads((root / "is.json").read_text())
    g, ref = r["generated"]["inception_score"], r["reference"]["inception_score"]
    assert r["seed"] == 7 and g["shuffle_seed"] == 7 and g["splits"] == 3
    assert g["mean"] == pytest.approx(inception_score(probs, 3, 7)["mean"], rel=1e-12)
    assert ref["shuffle_seed"] == 7 and ref["splits"] == 3


def test_metrics_under_1000_images_carry_a_warning(dirs, sets, capsys):
    root, _, ref_images, _, _ = sets
    save_batch(root / "ref.npz", ref_images)
    assert run_metrics(dirs, root, root / "ref.npz", root / "w.json", "--no-cache") == 0
    printed = capsys.readouterr().out
    warnings = json.loads((root / "w.json").read_text())["warnings"]
    assert any("40 generated" in w for w in warnings) and any("30 reference" in w for w in warnings)
    assert "warning: " in printed and "1,000" in printed
