"""Sampling studies of the bundled Fashion-MNIST model, scored like `maskgit metrics` on the judge's features.

    python benchmarks/sampling_studies.py schedules     # paper Table 3 / Fig. 8: every schedule x T
    python benchmarks/sampling_studies.py guidance      # classifier-free guidance 0..4, constant / linear
    python benchmarks/sampling_studies.py temperature   # choice temperature around 4.5, sampling temperature
    python benchmarks/sampling_studies.py select --model DIR --reference val --num-per-class 100
                                                        # pick a model's defaults on the validation split
    python benchmarks/sampling_studies.py select --local --model DIR --reference val --num-per-class 100
                                                        # re-check them after a decoder-only change

`select` scores a grid of steps x guidance x temperatures against the 5,000 validation images (for a model
trained with `maskgit train --split train`, which never sees them), then refines around the lowest-FD cell with
agreement >= 0.90 (guidance w, w + 2, w + 4 x temperature t, t + 0.1, t + 0.2 at its steps and choice
temperature), and picks the cell with the lowest FD among those whose class agreement is >= 0.90 with every
class >= 0.80 (the shipped model's bar of 0.75 plus a margin: one class's agreement on 100 samples has a
standard deviation of about 0.04), or the best agreement if none clears it; the test split stays untouched for
the final numbers. `select --local` is for a model whose transformer and defaults came from a full `select` and
whose tokenizer decoder alone changed since (`train-tokenizer --init-from` with `trainable: decoder`): the
transformer samples the same codes, only the images they decode to differ, so it scores just the defaults with
guidance w - 2, w and w + 2 (3 cells instead of ~31) and picks among them by the same rule.

Every cell generates `--num-per-class` samples of each class with per-sample seeds (the same seeds in every
cell, as `maskgit sample-dump` does) and reports, against the real test set (10,000 images): the Frechet
distance (FD) and improved precision / recall (k = 3) of the judge classifier's features, and class
agreement (the judge gives the requested class). FD is biased upwards at small sample counts, so each
study also reports the floor: the same metrics for as many real training images. Cells already in the
output JSON are skipped, so a killed run resumes. Writes benchmarks/results/study-<name>.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from reporting import pyplot, save_figure

from maskgit import MaskGIT
from maskgit.atomic import write_json_atomic
from maskgit.evaluation.features import load_extractor
from maskgit.evaluation.image_sets import to_uint8_nhwc
from maskgit.evaluation.metrics import feature_reference, score_features
from maskgit.evaluation.report import dataset_tensors
from maskgit.evaluation.sample_dump import balanced_labels, chunk_ranges, generate_samples

SCHEDULES = ["cosine", "square", "cubic", "exponential", "linear", "square-root", "logarithmic", "arccos"]
STEPS = [4, 6, 8, 10, 12, 16, 24, 32]
GUIDANCE = [0.0, 1.0, 2.0, 4.0]
CHOICE_TEMPERATURES = [1.0, 3.0, 4.5, 6.0, 9.0]
TEMPERATURES = [0.8, 1.0, 1.25]
# Temperature 1.2, not below 1: the temperature study found v1 sharper than the data (1.25 lowered FD and raised
# recall, at the cost of agreement, which linear guidance buys back).
SELECT = {"steps": [8, 12], "guidance": [(0.0, "constant"), (2.0, "linear"), (4.0, "linear")],
          "choice_temperature": [3.0, 4.5], "temperature": [1.0, 1.2]}
AGREEMENT_BAR, CLASS_BAR = 0.90, 0.80


def cells(study: str, schedules: list[str] = SCHEDULES) -> list[dict]:
    """The sampling overrides of every cell of a study (the rest: the model's defaults)."""
    if study == "schedules":
        return [{"schedule": s, "steps": t} for s in schedules for t in STEPS]
    if study == "guidance":
        return [{"guidance_scale": w, "guidance_schedule": g} for g in ("constant", "linear") for w in GUIDANCE
                if not (w == 0 and g == "linear")]
    if study == "temperature":
        return ([{"choice_temperature": c} for c in CHOICE_TEMPERATURES]
                + [{"temperature": t} for t in TEMPERATURES if t != 1.0])
    if study == "select":
        return [{"steps": t, "guidance_scale": w, "guidance_schedule": g, "choice_temperature": c, "temperature": tau}
                for t in SELECT["steps"] for w, g in SELECT["guidance"] for c in SELECT["choice_temperature"]
                for tau in SELECT["temperature"]]
    raise ValueError(f"unknown study {study!r}")


def local_cells(sampling) -> list[dict]:
    """`select --local`: the model's defaults with guidance w - 2, w, w + 2 (those >= 0)."""
    base = {k: getattr(sampling, k) for k in ("steps", "guidance_scale", "guidance_schedule", "choice_temperature",
                                              "temperature")}
    return [{**base, "guidance_scale": base["guidance_scale"] + dw} for dw in (-2.0, 0.0, 2.0)
            if base["guidance_scale"] + dw >= 0]


def refine_cells(rows: list[dict]) -> list[dict]:
    """Stage 2 of `select`: around the stage-1 cell of lowest FD with agreement >= AGREEMENT_BAR (per-class
    agreement aside), linear guidance w, w + 2, w + 4 x temperature t, t + 0.1, t + 0.2 at its steps and choice
    temperature (stage-1 rows only, so a resumed run refines around the same cell)."""
    grid = cells("select")
    anchors = [r for r in rows if r["class_agreement"] >= AGREEMENT_BAR
               and any(all(r.get(k) == v for k, v in cell.items()) for cell in grid)]
    if not anchors:
        return []
    a = min(anchors, key=lambda r: r["frechet_distance"])
    return [{"steps": a["steps"], "guidance_scale": a["guidance_scale"] + dw, "guidance_schedule": "linear",
             "choice_temperature": a["choice_temperature"], "temperature": round(a["temperature"] + dt, 2)}
            for dw in (0.0, 2.0, 4.0) for dt in (0.0, 0.1, 0.2)
            if not (dw == 0 and a["guidance_scale"] == 0)]


def select_settings(rows: list[dict]) -> dict:
    """The lowest-FD cell whose agreement clears the bar overall and in every class (else the best agreement)."""
    passing = [r for r in rows if r["class_agreement"] >= AGREEMENT_BAR and r["min_class_agreement"] >= CLASS_BAR]
    if passing:
        best = min(passing, key=lambda r: r["frechet_distance"])
    else:
        best = max(rows, key=lambda r: r["class_agreement"])
    keys = ("steps", "guidance_scale", "guidance_schedule", "choice_temperature", "temperature")
    return {"settings": {k: best[k] for k in keys}, "passed_the_bar": bool(passing), "cells_passing": len(passing),
            "rule": f"lowest FD among cells with class agreement >= {AGREEMENT_BAR} and every class >= {CLASS_BAR}",
            **{k: best[k] for k in ("frechet_distance", "precision", "recall", "class_agreement",
                                    "min_class_agreement")}}


def real_floor(extractor, reference: dict, count: int, seed: int, split: str = "trainval") -> dict:
    """The metrics of `count` real training images, class-balanced like the samples, against the reference."""
    train_x, train_y = dataset_tensors("fashion-mnist", split)
    order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))
    per_class = count // 10
    picked = torch.cat([order[train_y[order] == c][:per_class] for c in range(10)])
    feats, probs = extractor(to_uint8_nhwc(train_x[picked]), progress=False)
    return score_features(feats, probs, train_y[picked].numpy(), reference, agreement=True)


def judge_reference(extractor, split: str) -> dict:
    """The judge's features of a Fashion-MNIST split and their statistics, as `score_features` takes them."""
    real_x, _ = dataset_tensors("fashion-mnist", split)
    feats, _ = extractor(to_uint8_nhwc(real_x), progress=False)
    return feature_reference(feats)


def floor_spread(count: int, draws: int = 20, first_seed: int = 1) -> dict:
    """Mean and standard deviation of the real floor's metrics over `draws` random real sets of `count`
    images: the sampling noise of a cell's numbers at this sample count."""
    extractor = load_extractor("classifier:fashion-mnist-classifier")
    reference = judge_reference(extractor, "test")
    scores = [real_floor(extractor, reference, count, seed) for seed in range(first_seed, first_seed + draws)]
    keys = ("frechet_distance", "precision", "recall", "class_agreement")
    if draws == 1:
        return {**scores[0], "class_balanced": True}
    return {"draws": draws, "num_images": count, "class_balanced": True,
            **{k: {"mean": float(np.mean([s[k] for s in scores])), "std": float(np.std([s[k] for s in scores]))}
               for k in keys}}


def run_cell(pipe, extractor, reference: dict, labels: np.ndarray, overrides: dict, seed: int) -> dict:
    start = time.time()
    images = np.concatenate([generate_samples(pipe, chunk, labels, seed=seed, **overrides)
                             for chunk in chunk_ranges(len(labels), 250)])
    feats, probs = extractor(images, progress=False)
    score = score_features(feats, probs, labels, reference, agreement=True)
    score.pop("inception_score")
    per_class = [float((probs[labels == c].argmax(1) == c).mean()) for c in np.unique(labels)]
    return {**overrides, **score, "per_class_agreement": per_class, "min_class_agreement": min(per_class),
            "seconds": round(time.time() - start, 1)}


def default_cell(out_dir: Path, result: dict, pipe, overrides: dict) -> dict | None:
    """The default-settings cell is the same samples in every study: reuse the schedules study's if it exists."""
    if any(getattr(pipe.sampling, k) != v for k, v in overrides.items()):
        return None
    path = out_dir / "study-schedules.json"
    found = json.loads(path.read_text()) if path.is_file() and result["study"] != "schedules" else {}
    if (found.get("num_per_class"), found.get("seed")) != (result["num_per_class"], result["seed"]):
        return None
    row = next((r for r in found["rows"] if (r["schedule"], r["steps"]) == (pipe.sampling.schedule,
                                                                            pipe.sampling.steps)), None)
    return None if row is None else {**overrides, **{k: v for k, v in row.items() if k not in ("schedule", "steps")},
                                     "shared_with": "study-schedules.json (same settings, same samples)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=["schedules", "guidance", "temperature", "select"])
    parser.add_argument("--model", default="fashion-mnist", help="bundled model name or a model directory")
    parser.add_argument("--reference", choices=["test", "val"], default="test",
                        help="real images the samples are scored against (select: val, the model's unseen split)")
    parser.add_argument("--num-per-class", type=int, default=10, help="samples of every class in every cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--schedules", default=",".join(SCHEDULES),
                        help="schedules study: a subset, run as a separate part (output .part-NAME.json)")
    parser.add_argument("--part", default=None, help="name of this part (parts run in parallel processes)")
    parser.add_argument("--merge", action="store_true", help="join the parts' rows into the study file and plot")
    parser.add_argument("--local", action="store_true",
                        help="select: only the model's defaults with guidance w - 2, w, w + 2 (after a decoder-only "
                             "change; see above)")
    args = parser.parse_args()
    out = args.out_dir / (f"study-{args.study}.json" if args.part is None else
                          f"study-{args.study}.part-{args.part}.json")
    if args.merge:
        return merge_parts(args.out_dir, args.study)
    if args.study == "select" and args.reference != "val":
        sys.exit("select picks defaults on the validation split: pass --reference val (the test split is for the "
                 "final numbers only)")
    pipe = MaskGIT.from_pretrained(args.model)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    extractor = load_extractor("classifier:fashion-mnist-classifier")
    reference = judge_reference(extractor, args.reference)
    labels = balanced_labels(pipe.transformer.config.num_classes, args.num_per_class)
    result = json.loads(out.read_text()) if out.is_file() else {}
    if result.get("num_per_class") not in (None, args.num_per_class) or result.get("seed") not in (None, args.seed):
        sys.exit(f"{out} was made with other settings; remove it first")
    if result and (result.get("model", "fashion-mnist"), result.get("reference_split", "test")) != (args.model,
                                                                                                 args.reference):
        sys.exit(f"{out} holds another model's or reference's cells; use another --out-dir")
    result.update({"study": args.study, "model": args.model, "num_per_class": args.num_per_class,
                   "num_images_per_cell": len(labels), "seed": args.seed, "defaults": vars(pipe.sampling),
                   "features": extractor.describe(), "reference_split": args.reference,
                   "reference": f"Fashion-MNIST {args.reference} split, {len(reference['features']):,} images",
                   "k": 3, "command": "python benchmarks/sampling_studies.py " + " ".join(sys.argv[1:])})
    floor_split = "train" if args.reference == "val" else "trainval"  # real images the model may have seen
    result.setdefault("real_floor", real_floor(extractor, reference, len(labels), args.seed, floor_split))
    rows = result.setdefault("rows", [])
    if args.local and args.study != "select":
        sys.exit("--local is a select option")
    stages = [lambda: cells(args.study, args.schedules.split(","))]
    if args.local:
        stages = [lambda: local_cells(pipe.sampling)]
    elif args.study == "select":
        stages.append(lambda: refine_cells(rows))
    for stage in stages:
        for overrides in stage():
            if any(all(r.get(k) == v for k, v in overrides.items()) for r in rows):
                continue
            shared = default_cell(args.out_dir, result, pipe, overrides)
            shared = shared if args.reference == "test" and args.model == "fashion-mnist" else None
            rows.append(shared or run_cell(pipe, extractor, reference, labels, overrides, args.seed))
            print(json.dumps(rows[-1]), flush=True)
            write_json_atomic(out, result)
    if args.study == "select":
        result["chosen"] = select_settings(rows)
        print("chosen:", json.dumps(result["chosen"]))
    write_json_atomic(out, result)
    PLOTS[args.study](result, out.with_suffix(".png"))


def merge_parts(out_dir: Path, study: str) -> None:
    """Join `study-<study>.part-*.json` rows into `study-<study>.json` (same settings), then plot."""
    out = out_dir / f"study-{study}.json"
    parts = sorted(out_dir.glob(f"study-{study}.part-*.json"))
    result = json.loads(out.read_text()) if out.is_file() else json.loads(parts[0].read_text())
    commands = result["command"] if isinstance(result["command"], list) else [result["command"]]
    for part in parts:
        found = json.loads(part.read_text())
        if (found["num_per_class"], found["seed"]) != (result["num_per_class"], result["seed"]):
            sys.exit(f"{part} was made with other settings than {out}")
        keys = {json.dumps({k: r[k] for k in ("schedule", "steps")}) for r in result["rows"]}
        result["rows"] += [r for r in found["rows"] if json.dumps({k: r[k] for k in ("schedule", "steps")}) not in keys]
        commands.append(found["command"])
    merge = f"python benchmarks/sampling_studies.py {study} --merge"
    result["command"] = sorted(set(commands) - {merge}) + [merge]
    if "real_floor_spread" not in result:  # balanced real sets (parts made before this may hold another floor)
        result["real_floor_spread"] = floor_spread(result["num_images_per_cell"])
        result["real_floor"] = floor_spread(result["num_images_per_cell"], draws=1, first_seed=result["seed"])
    write_json_atomic(out, result)
    for part in parts:
        part.unlink()
    PLOTS[study](result, out.with_suffix(".png"))


def plot_schedules(result: dict, path: Path) -> None:
    rows = result["rows"]
    metrics = [("frechet_distance", "FD (judge features), lower is better"), ("precision", "precision"),
               ("recall", "recall"), ("class_agreement", "class agreement")]
    fig, axes = pyplot().subplots(1, 4, figsize=(22, 5))
    for ax, (key, title) in zip(axes, metrics):
        grid = np.array([[next((r[key] for r in rows if r["schedule"] == s and r["steps"] == t), np.nan)
                          for t in STEPS] for s in SCHEDULES])  # NaN: a cell not run
        im = ax.imshow(grid, cmap="viridis_r" if key == "frechet_distance" else "viridis", aspect="auto")
        filled = np.where(np.isnan(grid), np.inf if key == "frechet_distance" else -np.inf, grid)
        best = filled.argmin(1) if key == "frechet_distance" else filled.argmax(1)
        for i in range(len(SCHEDULES)):
            for j in range(len(STEPS)):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="red" if j == best[i] else "white", weight="bold" if j == best[i] else None)
        ax.set(xticks=range(len(STEPS)), xticklabels=STEPS, yticks=range(len(SCHEDULES)), yticklabels=SCHEDULES,
               xlabel="decoding steps T", title=f"{title}\n(real floor {_floor_text(result, key)})")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(f"Mask schedule x T, bundled Fashion-MNIST model, {result['num_images_per_cell']} samples per cell "
                 f"(red: best T per schedule)")
    save_figure(fig, path)


def plot_guidance(result: dict, path: Path) -> None:
    rows, floor = result["rows"], result["real_floor"]
    fig, axes = pyplot().subplots(1, 2, figsize=(12, 4.5))
    for schedule, marker in (("constant", "o"), ("linear", "s")):
        rs = sorted([r for r in rows if r["guidance_schedule"] == schedule or r["guidance_scale"] == 0],
                    key=lambda r: r["guidance_scale"])
        axes[0].plot([r["class_agreement"] for r in rs], [r["frechet_distance"] for r in rs], marker=marker,
                     label=f"{schedule} guidance")
        for r in rs:
            axes[0].annotate(f"{r['guidance_scale']:g}", (r["class_agreement"], r["frechet_distance"]), fontsize=7)
        axes[1].plot([r["precision"] for r in rs], [r["recall"] for r in rs], marker=marker, label=schedule)
    axes[0].axhline(floor["frechet_distance"], color="k", ls="--",
                    label=f"real floor (same count): {_floor_text(result, 'frechet_distance')}")
    axes[0].set(xlabel="class agreement", ylabel="FD (judge features)", title="quality vs class fidelity (w labels)")
    axes[1].plot([floor["precision"]], [floor["recall"]], "k*", ms=12, label="real floor")
    axes[1].set(xlabel="precision", ylabel="recall", title="precision / recall")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"Classifier-free guidance, {result['num_images_per_cell']} samples per cell")
    save_figure(fig, path)


def plot_temperature(result: dict, path: Path) -> None:
    rows, floor = result["rows"], result["real_floor"]
    fig, axes = pyplot().subplots(1, 2, figsize=(12, 4.5))
    series = [("choice_temperature", [r for r in rows if "choice_temperature" in r],
               "choice temperature (temperature 1.0)"),
              ("temperature", [r for r in rows if "temperature" in r]
               + [r for r in rows if r.get("choice_temperature") == 4.5], "sampling temperature (choice 4.5)")]
    for ax, (key, rs, title) in zip(axes, series):
        rs = sorted(rs, key=lambda r: r.get(key, 1.0))
        xs = [r.get(key, 1.0) for r in rs]
        ax.plot(xs, [r["frechet_distance"] for r in rs], "o-", label="FD")
        ax.axhline(floor["frechet_distance"], color="k", ls="--",
                   label=f"FD real floor: {_floor_text(result, 'frechet_distance')}")
        twin = ax.twinx()
        for metric, style in (("precision", "s:"), ("recall", "^:"), ("class_agreement", "d:")):
            twin.plot(xs, [r[metric] for r in rs], style, label=metric)
        twin.set(ylim=(0, 1.02), ylabel="precision / recall / agreement")
        ax.set(xlabel=key.replace("_", " "), ylabel="FD (judge features)", title=title)
        ax.legend(loc="upper left", fontsize=8)
        twin.legend(loc="upper right", fontsize=8)
    if "choice_temperature" in rows[0]:
        axes[0].axvline(4.5, color="grey", lw=0.8)
    fig.suptitle(f"Temperatures, {result['num_images_per_cell']} samples per cell")
    save_figure(fig, path)


def _floor_text(result: dict, key: str) -> str:
    """The real floor of `key`, with the spread over random real sets when known."""
    spread = result.get("real_floor_spread", {}).get(key)
    if spread is None:
        return f"{result['real_floor'][key]:.2f}"
    return f"{spread['mean']:.2f} +- {spread['std']:.2f} over {result['real_floor_spread']['draws']} real sets"


def plot_select(result: dict, path: Path) -> None:
    rows, chosen = result["rows"], result["chosen"]["settings"]
    fig, axes = pyplot().subplots(1, 2, figsize=(13, 5))
    for r in rows:
        ok = r["class_agreement"] >= AGREEMENT_BAR and r["min_class_agreement"] >= CLASS_BAR
        is_chosen = all(r[k] == v for k, v in chosen.items())
        style = dict(marker="*" if is_chosen else "o", ms=14 if is_chosen else 6, color="C2" if ok else "C3")
        axes[0].plot(r["class_agreement"], r["frechet_distance"], ls="", **style)
        axes[1].plot(r["precision"], r["recall"], ls="", **style)
        label = (f"T{r['steps']} w{r['guidance_scale']:g}{r['guidance_schedule'][0]} c{r['choice_temperature']:g} "
                 f"t{r['temperature']:g}")
        axes[0].annotate(label, (r["class_agreement"], r["frechet_distance"]), fontsize=6)
    axes[0].axvline(AGREEMENT_BAR, color="grey", lw=0.8)
    axes[0].set(xlabel="class agreement", ylabel="FD to the validation images (judge features)",
                title=f"green: agreement >= {AGREEMENT_BAR} and every class >= {CLASS_BAR}; star: chosen")
    axes[1].set(xlabel="precision", ylabel="recall", title="precision / recall")
    fig.suptitle(f"Default sampling settings of {result['model']}, chosen on the validation split "
                 f"({result['num_images_per_cell']} samples per cell)")
    save_figure(fig, path)


PLOTS = {"schedules": plot_schedules, "guidance": plot_guidance, "temperature": plot_temperature,
         "select": plot_select}

if __name__ == "__main__":
    main()
