"""Evaluation commands end to end on digits with tiny real components (judge, generation, editing)."""
import json

import pytest
import torch

from maskgit import MaskGIT
from maskgit.config import ModelConfig
from maskgit.evaluation.editing import centre_mask, evaluate_editing
from maskgit.evaluation.report import evaluate_model, train_judge
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    cfg = ModelConfig(tokenizer=TOKENIZER_PRESETS["tiny"], transformer=TRANSFORMER_PRESETS["tiny"])
    model = MaskGIT.from_config(cfg).save_pretrained(root / "model")
    metrics = train_judge("digits", root / "judge", epochs=6, batch_size=32)
    return root, model, metrics


def test_judge_learns_digits(setup):
    root, _, metrics = setup
    assert metrics["test_accuracy"] > 0.6  # 6 quick epochs on 8x8 digits; chance is 0.1
    assert json.loads((root / "judge" / "classifier.json").read_text())["metrics"]["test_accuracy"] == \
        metrics["test_accuracy"]


def test_evaluate_generation(setup):
    root, model, _ = setup
    r = evaluate_model(str(model), str(root / "judge"), root / "gen.json", data="digits", num_per_class=3,
                       steps=2)
    assert r["num_images"] == 30 and 0 <= r["agreement"] <= 1 and r["frechet_to_real_test"] > 0
    assert r["frechet_real_train_vs_test"] < r["frechet_to_real_test"]  # random model: far from real images
    assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 and r["precision_recall_k"] == 3
    assert (root / "gen.png").is_file()
    with pytest.raises(FileExistsError):
        evaluate_model(str(model), str(root / "judge"), root / "gen.json", data="digits", num_per_class=1)


def test_evaluate_editing(setup):
    root, model, _ = setup
    r = evaluate_editing(str(model), str(root / "judge"), root / "edit.json", data="digits", num_inpaint=20,
                         num_edit=10, batch_size=10, steps=4)
    assert r["inpainting"]["num_images"] == 20 and r["class_editing"]["num_trials"] == 10
    assert 0 <= r["inpainting"]["label_kept"] <= 1 and (root / "edit.png").is_file()


def test_centre_mask():
    m = centre_mask(torch.zeros(2, 1, 28, 28))
    assert int(m[0].sum()) == 14 * 14 and m[0, 0, 7:21, 7:21].all()


def test_a_judge_for_other_images_or_bad_counts_are_refused_before_work(setup):
    root, model, _ = setup
    with pytest.raises(ValueError, match="train-classifier"):  # the bundled judge takes 28x28, the model makes 8x8
        evaluate_model(str(model), "fashion-mnist-classifier", root / "x.json", data="digits", num_per_class=1)
    with pytest.raises(ValueError, match="num-per-class"):
        evaluate_model(str(model), str(root / "judge"), root / "x.json", data="digits", num_per_class=0)
    with pytest.raises(ValueError, match="num-inpaint"):
        evaluate_editing(str(model), str(root / "judge"), root / "x.json", data="digits", num_inpaint=0)
    with pytest.raises(FileExistsError, match="--overwrite"):
        train_judge("digits", root / "judge", epochs=1)
    assert not (root / "x.json").exists() and not (root / "x.png").exists()


def test_data_other_than_the_models_is_refused(setup):
    root, _, _ = setup
    bundled = "fashion-mnist"  # 28x28 model and judge; digits are 8x8
    with pytest.raises(ValueError, match="pass the dataset the model was trained on"):
        evaluate_model(bundled, "fashion-mnist-classifier", root / "y.json", data="digits", num_per_class=1)
    with pytest.raises(ValueError, match="pass the dataset the model was trained on"):
        evaluate_editing(bundled, "fashion-mnist-classifier", root / "y.json", data="digits", num_inpaint=1)
    with pytest.raises(ValueError, match="--steps must exceed"):
        evaluate_editing(bundled, "fashion-mnist-classifier", root / "y.json", data="digits", steps=2)


def test_decomposition_scores_real_reconstructed_and_generated_sets_with_equal_class_counts(setup):
    from maskgit.evaluation.classifier import load_classifier, predict
    from maskgit.evaluation.decomposition import SETS, decompose, per_class_subset
    from maskgit.evaluation.report import dataset_tensors

    root, model, _ = setup
    pipe, judge = MaskGIT.from_pretrained(model), load_classifier(root / "judge")
    train, real = dataset_tensors("digits", "train"), dataset_tensors("digits", "test")
    result, samples = decompose(pipe, judge, train, real, num_per_class=4, seed=1, steps=2)
    sets = result["sets"]
    assert list(sets) == list(SETS) and samples.shape == (40, *train[0].shape[1:])
    assert [sets[n]["num_images"] for n in SETS] == [40, 40, len(real[0]), 40]
    pick = per_class_subset(train[1], 4, 10, seed=1)
    assert torch.bincount(train[1][pick], minlength=10).tolist() == [4] * 10
    preds, _ = predict(judge, train[0][pick])
    assert sets["real_train"]["agreement"] == pytest.approx(float((preds == train[1][pick]).float().mean()))
    # An untrained tokenizer's reconstructions are far from real digits; real train images are close.
    assert sets["recon_train"]["frechet_to_real"] > 2 * sets["real_train"]["frechet_to_real"]
    assert sets["samples"]["frechet_to_recon_train"] > 0 and sorted(sets["samples"]["per_class"]) == list(range(10))
    assert all(0 <= sets[n][m] <= 1 for n in SETS for m in ("precision", "recall", "agreement"))
    with pytest.raises(ValueError, match="fewer than --num-per-class"):
        per_class_subset(train[1], 10_000, 10, seed=0)
    alone, none = decompose(pipe, judge, train, real, num_per_class=4, seed=1, with_samples=False)
    assert none is None and list(alone["sets"]) == ["real_train", "recon_train", "recon_test"]
    assert alone["sets"]["recon_train"] == sets["recon_train"]  # the same floor, without sampling


def test_before_after_table_lists_each_shared_set_twice_and_refuses_other_real_sets():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from fashion_mnist_decomposition import before_after

    def result(fd):
        row = {"agreement": 0.9, "frechet_to_real": fd, "precision": 0.8, "recall": 0.7}
        return {"split": "test", "num_per_class": 100, "seed": 0,
                "sets": {"recon_test": row, "samples": {**row, "frechet_to_real": 2 * fd}}}

    text = before_after(result(6.0), result(3.0), ("v1", "v2"))
    rows = [line for line in text.splitlines()[2:]]
    assert len(rows) == 4 and [r.split(" | ")[1] for r in rows] == ["v1", "v2", "v1", "v2"]
    assert "| 12.00 |" in rows[2] and "| 6.00 |" in rows[3]
    with pytest.raises(ValueError, match="split"):
        before_after({**result(6.0), "split": "val"}, result(3.0))


def test_seed_spread_seed_s_scores_exactly_what_maskgit_evaluate_seed_s_scores(tmp_path):
    """The seed-spread benchmark's row for seed s must be `maskgit evaluate --seed s` (bundled model, real data)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from fashion_mnist_seed_spread import main

    args = ["--model", "fashion-mnist", "--seeds", "2", "--num-per-class", "1", "--out", str(tmp_path / "spread")]
    assert main(args) == 0
    spread = json.loads((tmp_path / "spread.json").read_text())
    rows = spread["models"]["fashion-mnist"]["seeds"]
    assert [r["seed"] for r in rows] == [0, 1] and len(spread["real_train_frechet"]) == 2
    evaluate_model("fashion-mnist", "fashion-mnist-classifier", tmp_path / "eval.json", num_per_class=1, seed=1)
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    for key in ("agreement", "agreement_per_class", "frechet_to_real_test", "precision", "recall", "num_images"):
        assert rows[1][key] == evaluated[key], key
    assert (tmp_path / "spread.png").is_file() and "| fashion-mnist | 2 |" in (tmp_path / "spread.md").read_text()
    with pytest.raises(FileExistsError):  # an existing result is never overwritten without --overwrite
        main(args)


def test_local_select_varies_only_the_guidance_of_the_defaults_and_keeps_the_rule():
    import sys
    from pathlib import Path

    from maskgit.config import SamplingConfig

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from sampling_studies import local_cells, select_settings

    defaults = SamplingConfig(steps=8, temperature=1.2, guidance_scale=6.0, guidance_schedule="linear")
    found = local_cells(defaults)
    assert [c["guidance_scale"] for c in found] == [4.0, 6.0, 8.0]
    assert all({k: v for k, v in c.items() if k != "guidance_scale"} == {
        "steps": 8, "guidance_schedule": "linear", "choice_temperature": 4.5, "temperature": 1.2} for c in found)
    assert [c["guidance_scale"] for c in local_cells(SamplingConfig(guidance_scale=1.0))] == [1.0, 3.0]
    rows = [{**c, "frechet_distance": fd, "precision": 0.8, "recall": 0.8, "class_agreement": agr,
             "min_class_agreement": low} for c, fd, agr, low in zip(found, (4.0, 5.0, 6.0), (0.95, 0.96, 0.97),
                                                                      (0.78, 0.82, 0.85))]
    assert select_settings(rows)["settings"]["guidance_scale"] == 6.0  # w=4 misses the class bar
