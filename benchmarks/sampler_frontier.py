"""Speed against quality for every sampler of the bundled model: one study, one chart.

    python benchmarks/sampler_frontier.py screen --reference val      # every cell at one seed
    python benchmarks/sampler_frontier.py timing --reference val      # every screened cell timed again, quietly
    python benchmarks/sampler_frontier.py interval --reference val    # guidance intervals (+ cheap passes), 6 steps
    python benchmarks/sampler_frontier.py refine --reference val      # 5-6 steps x choice temperature; grouped
    python benchmarks/sampler_frontier.py seeds --reference val       # 3 seeds: frontier cells + the default
    python benchmarks/sampler_frontier.py seeds --reference test --cells default,fast   # the final numbers

Cells: sampler (confidence, halton) x steps {4, 6, 8, 12, 16} x cheap (cached) passes {0, 1, 2} x guidance
schedule (constant, linear, power-cosine) at the model's guidance scale; confidence cells use the model's schedule
and temperature, halton cells the arccos schedule of its reference implementation and a softmax temperature
annealed from 1.0 to 0.7 (see SAMPLERS). Each cell generates 100
images of each class (1,000) with per-image seeds (as `maskgit sample-dump`) and reports the seconds the
generation took (transformer and tokenizer decoder; scoring not timed) per 1,000 images, and the judge
classifier's Frechet distance, precision / recall (k = 3) and class agreement against the reference split.
`timing` times every screened cell again on one batch of 250 images (per 1,000: x 4), round-robin, on an
otherwise idle machine (one round: 100 cells take ~15 min on 2 cores), so that the frontier is not drawn from
a screen run that shared the CPU.
`interval` screens guidance intervals (Kynkaanniemi et al. 2024) at 6 steps: guidance (and its unconditional pass)
only at the steps after `guidance_start`, at the model's guidance scale and at 1.5x it, with 0, 1 and 2 cheap passes.
`refine` screens 5 and 6 steps guiding the last 2 or 3 of them, at lower choice temperatures (the Gumbel noise on the
confidences: fewer steps want a greedier choice), 2 cheap passes; and ReCAP's grouped decoding (`grouped`, 8 steps,
1-3 cheap passes, the model's temperature and the annealed 1.0 -> 0.7 of the halton cells).
`seeds` reruns the cells on the screen's FD and the timing stage's seconds frontier, the interval and refine stages'
cells within the quality bars at their seed, the default and the model's current `fast` at seeds 0-2 (`--cells
interval`: all but the screen's frontier) and picks `fast`: the fastest whose mean FD is at most the default's mean +
one standard deviation and whose agreement is >= 0.93 (the JSON says whether it takes at most half the default's
seconds). Cells already in the output JSON are skipped (a killed run resumes). Writes
benchmarks/results/sampler-frontier-<stage>-<reference>.{json,png,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sampling_studies import judge_reference

from maskgit import MaskGIT
from maskgit.atomic import write_json_atomic
from maskgit.evaluation.features import load_extractor
from maskgit.evaluation.metrics import score_features
from maskgit.evaluation.sample_dump import balanced_labels, chunk_ranges, generate_samples
from maskgit.fastpath import resolve_dtype

# sampler -> (schedule, temperature, temperature_end); None: the model's. Halton samples every decided token with
# no confidence filter, so it needs a cooler, annealed softmax (its reference anneals it too): at the model's 1.2
# it scores FD ~30 on the validation split; 1.0 -> 0.7 was the best of five settings tried there at 8 steps.
SAMPLERS = {"confidence": (None, None, None), "halton": ("arccos", 1.0, 0.7)}
STEPS = [4, 6, 8, 12, 16]
CHEAP = [0, 1, 2]
GUIDANCE_SCHEDULES = ["constant", "linear", "power-cosine"]
AGREEMENT_BAR, SPEED_BAR = 0.93, 2.0
KEYS = ("sampler", "schedule", "temperature", "temperature_end", "steps", "cheap_passes", "guidance_schedule",
        "guidance_scale", "guidance_start", "choice_temperature")
INTERVAL_STARTS = [0.34, 0.5, 0.67]  # at 6 steps: guide the last 4, 3 or 2 steps
CHOICE_TEMPERATURES = [2.0, 3.0, 4.5]  # refine: 4.5 is the official (and the model's)


def screen_cells(pipe, steps: list[int] = STEPS) -> list[dict]:
    """Every cell of the grid (and the model's default, first)."""
    cells = [default_cell(pipe)]
    for t, s, c, g in itertools.product(steps, SAMPLERS, CHEAP, GUIDANCE_SCHEDULES):
        schedule, temperature, end = SAMPLERS[s]
        cells.append({"sampler": s, "schedule": schedule or pipe.sampling.schedule,
                      "temperature": temperature or pipe.sampling.temperature, "temperature_end": end, "steps": t,
                      "cheap_passes": c, "guidance_schedule": g, "guidance_scale": pipe.sampling.guidance_scale,
                      "guidance_start": 0.0})
    return cells


def interval_cells(pipe) -> list[dict]:
    """Confidence sampling at 6 steps with guidance only after `guidance_start` (x schedule x scale x cheap)."""
    w = pipe.sampling.guidance_scale
    return [{**default_cell(pipe), "steps": 6, "guidance_schedule": g, "guidance_start": start,
             "guidance_scale": scale, "cheap_passes": c}
            for g, start, scale, c in itertools.product(["linear", "power-cosine"], INTERVAL_STARTS, [w, 1.5 * w],
                                                        CHEAP)]


def refine_cells(pipe) -> list[dict]:
    """Confidence sampling at 5 and 6 steps guiding the last 2 or 3, x scale x choice temperature (2 cheap
    passes); ReCAP's grouped decoding at 8 steps x 1-3 cheap passes x two temperatures."""
    w, base = pipe.sampling.guidance_scale, default_cell(pipe)
    cells = [{**base, "steps": t, "guidance_schedule": "linear", "guidance_start": round((t - guided) / t, 2),
              "guidance_scale": scale, "cheap_passes": 2, "choice_temperature": ct}
             for t, guided, scale, ct in itertools.product([5, 6], [2, 3], [w, 1.5 * w], CHOICE_TEMPERATURES)]
    for c, (temperature, end) in itertools.product([1, 2, 3], [(base["temperature"], None), SAMPLERS["halton"][1:]]):
        cells.append({**base, "sampler": "grouped", "cheap_passes": c, "temperature": temperature,
                      "temperature_end": end})
    return cells


def interval_passing(out_dir: Path, pipe) -> list[dict]:
    """The interval and refine stages' cells within the quality bars at their seed (FD at most the stage's default
    cell's)."""
    cells = []
    for stage in ("interval", "refine"):
        path = out_dir / f"sampler-frontier-{stage}-val.json"
        if not path.is_file():
            continue
        found = [with_defaults(r, pipe) for r in json.loads(path.read_text())["rows"]]
        base = next(r for r in found if same(r, default_cell(pipe)))
        cells += [{k: r[k] for k in KEYS} for r in found if r["class_agreement"] >= AGREEMENT_BAR
                  and r["frechet_distance"] <= base["frechet_distance"] and not same(r, base)]
    return cells


def model_fast(pipe) -> list[dict]:
    """The model's shipped `fast` preset as a cell (none if it has none)."""
    if "fast" not in {p.name for p in pipe.sampling_presets}:
        return []
    return [{k: v for k, v in vars(pipe.resolve_sampling("fast")).items() if k in KEYS}]


def with_defaults(row: dict, pipe) -> dict:
    """A row of an older result file, without the keys added since, completed with their values then."""
    return {"guidance_scale": pipe.sampling.guidance_scale, "guidance_start": 0.0,
            "choice_temperature": pipe.sampling.choice_temperature, **row}


def default_cell(pipe) -> dict:
    s = pipe.sampling
    return {"sampler": s.sampler, "schedule": s.schedule, "temperature": s.temperature,
            "temperature_end": s.temperature_end, "steps": s.steps, "cheap_passes": s.cheap_passes,
            "guidance_schedule": s.guidance_schedule, "guidance_scale": s.guidance_scale,
            "guidance_start": s.guidance_start, "choice_temperature": s.choice_temperature}


def same(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in KEYS)


def run_cell(pipe, extractor, reference: dict, labels: np.ndarray, cell: dict, seed: int) -> dict:
    """Generate the cell's images (timed), then score them."""
    start = time.perf_counter()
    images = np.concatenate([generate_samples(pipe, chunk, labels, seed=seed, **cell)
                             for chunk in chunk_ranges(len(labels), 250)])
    seconds = time.perf_counter() - start
    feats, probs = extractor(images, progress=False)
    score = score_features(feats, probs, labels, reference, agreement=True)
    score.pop("inception_score")
    per_class = [float((probs[labels == c].argmax(1) == c).mean()) for c in np.unique(labels)]
    return {**cell, "seed": seed, **score, "min_class_agreement": min(per_class),
            "seconds_per_1000": round(seconds * 1000 / len(labels), 2)}


def time_cells(pipe, labels: np.ndarray, result: dict, out: Path, rounds: int = 1, batch: int = 250) -> None:
    """Seconds per 1,000 images of every screened cell, from one batch of `batch` images, best of `rounds`
    round-robin passes (a slow phase of the machine hits every cell alike)."""
    screen = json.loads((out.parent / out.name.replace("timing", "screen")).read_text())
    cells = [{k: r[k] for k in KEYS} for r in (with_defaults(r, pipe) for r in screen["rows"])]
    generate_samples(pipe, range(8), labels, seed=0)  # warm-up
    times = [[] for _ in cells]
    for _ in range(rounds):
        for cell, spent in zip(cells, times):
            start = time.perf_counter()
            generate_samples(pipe, range(batch), labels, seed=0, **cell)
            spent.append(time.perf_counter() - start)
    result["rows"] = [{**c, "seconds_per_1000": round(min(t) * 1000 / batch, 2), "seconds_per_batch": t,
                       "batch": batch} for c, t in zip(cells, times)]
    write_json_atomic(out, result)


def retime(pipe, labels: np.ndarray, cells: list[dict], rounds: int = 3, batch: int = 250) -> list[float]:
    """Seconds per 1,000 images of each cell: the best of `rounds` round-robin passes over the cells, each timing
    one batch of `batch` images (generation is deterministic work, so the fastest pass is the least disturbed)."""
    best = [float("inf")] * len(cells)
    for _ in range(rounds):
        for i, cell in enumerate(cells):
            start = time.perf_counter()
            generate_samples(pipe, range(batch), labels, seed=0, **cell)
            best[i] = min(best[i], time.perf_counter() - start)
    return [round(b * 1000 / batch, 2) for b in best]


def frontier(rows: list[dict]) -> list[dict]:
    """Cells no other cell beats on both seconds and FD (the lower-left hull of the scatter)."""
    return [r for r in rows if not any(o["seconds_per_1000"] < r["seconds_per_1000"] and
                                       o["frechet_distance"] < r["frechet_distance"] for o in rows)]


def summarise(rows: list[dict], cell: dict) -> dict:
    """Mean and standard deviation over the seeds of one cell."""
    found = [r for r in rows if same(r, cell)]
    out = {k: cell[k] for k in KEYS}
    for key in ("frechet_distance", "precision", "recall", "class_agreement", "min_class_agreement",
                "seconds_per_1000"):
        values = [r[key] for r in found]
        out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}
    out["seeds"] = [r["seed"] for r in found]
    return out


def choose_fast(summaries: list[dict], default: dict) -> dict | None:
    """The fastest cell with mean FD <= the default's mean + one standard deviation and agreement >= AGREEMENT_BAR,
    if it is faster than the default (with `speedup` and whether it reaches SPEED_BAR); None if none is."""
    d = next(s for s in summaries if same(s, default))
    bar = d["frechet_distance"]["mean"] + d["frechet_distance"]["std"]
    ok = [s for s in summaries if s["frechet_distance"]["mean"] <= bar and
          s["class_agreement"]["mean"] >= AGREEMENT_BAR]
    best = min(ok, key=lambda s: s["seconds_per_1000"]["mean"])
    if same(best, default):
        return None
    speedup = d["seconds_per_1000"]["mean"] / best["seconds_per_1000"]["mean"]
    return {**{k: best[k] for k in KEYS}, "speedup": speedup, "reaches_speed_bar": speedup >= SPEED_BAR,
            "fd_bar": bar}


def table(result: dict) -> str:
    """A Markdown table of the cells, fastest first (seeds stage: mean +- std over the seeds)."""
    rows = result.get("summaries") or result["rows"]
    fmt = (lambda r, k, d: f"{r[k]['mean']:.{d}f} +- {r[k]['std']:.{d}f}") if result.get("summaries") else \
        (lambda r, k, d: f"{r[k]:.{d}f}")
    lines = ["| sampler | schedule | temperature | choice temperature | steps | cheap passes | guidance | "
             "s / 1,000 images | FD | precision | recall | agreement |", "|" + "---|" * 12]
    for r in sorted(rows, key=lambda r: r["seconds_per_1000"]["mean"] if result.get("summaries") else
                    r["seconds_per_1000"]):
        temp = f"{r['temperature']}" + (f" -> {r['temperature_end']}" if r.get("temperature_end") else "")
        guidance = f"{r['guidance_schedule']} w={r['guidance_scale']:g}" + \
            (f" after {r['guidance_start']:g}" if r.get("guidance_start") else "")
        mark = " (default)" if same(r, result["default"]) else " (fast)" if result.get("fast") and \
            same(r, result["fast"]) else ""
        lines.append(f"| {r['sampler']}{mark} | {r['schedule']} | {temp} | {r['choice_temperature']:g} | "
                     f"{r['steps']} | {r['cheap_passes']} | "
                     f"{guidance} | {fmt(r, 'seconds_per_1000', 1)} | {fmt(r, 'frechet_distance', 2)} | "
                     f"{fmt(r, 'precision', 3)} | {fmt(r, 'recall', 3)} | {fmt(r, 'class_agreement', 3)} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = {"constant": "o", "linear": "s", "power-cosine": "^"}
    colours = {("confidence", 0): "tab:blue", ("confidence", 1): "tab:cyan", ("confidence", 2): "lightblue",
               ("halton", 0): "tab:red", ("halton", 1): "tab:orange", ("halton", 2): "gold",
               ("grouped", 1): "tab:green", ("grouped", 2): "yellowgreen", ("grouped", 3): "darkgreen"}
    rows = result.get("summaries") or result["rows"]
    value = (lambda r, k: r[k]["mean"]) if result.get("summaries") else (lambda r, k: r[k])
    for r in rows:
        colour = colours[(r["sampler"], r["cheap_passes"])]
        hot = r["sampler"] == "halton" and r.get("temperature_end") is None  # halton at the model's temperature
        interval = bool(r.get("guidance_start"))  # guided only after guidance_start
        ax.scatter(value(r, "seconds_per_1000"), value(r, "frechet_distance"), marker=markers[r["guidance_schedule"]],
                   facecolors="none" if hot else colour, edgecolors="black" if interval else colour,
                   s=18 + 4 * r["steps"], alpha=0.8)
        if result.get("summaries"):
            ax.errorbar(value(r, "seconds_per_1000"), value(r, "frechet_distance"),
                        yerr=r["frechet_distance"]["std"], color="grey", lw=0.8, zorder=0)
    for key, label in (("default", "default"), ("fast", "fast")):
        cell = result.get(key)
        if cell:
            r = next((r for r in rows if same(r, cell)), None)
            if r:
                ax.annotate(label, (value(r, "seconds_per_1000"), value(r, "frechet_distance")), fontsize=9,
                            xytext=(6, 6), textcoords="offset points", weight="bold")
    for (sampler, cheap), colour in colours.items():
        ax.scatter([], [], color=colour, label=f"{sampler}, {cheap} cheap passes")
    for g, m in markers.items():
        ax.scatter([], [], marker=m, color="black", label=f"guidance {g}")
    ax.scatter([], [], facecolors="none", edgecolors="tab:red", label="halton at the model's temperature 1.2")
    ax.scatter([], [], facecolors="white", edgecolors="black", label="guidance interval (black edge)")
    default = next((r for r in rows if same(r, result["default"])), None)
    if default is not None:  # cells far worse than the default (e.g. constant guidance) would squash the rest
        top = 3 * value(default, "frechet_distance")
        clipped = sum(value(r, "frechet_distance") > top for r in rows)
        ax.set_ylim(0, top)
        if clipped:
            ax.text(0.01, 0.98, f"{clipped} cells with FD > {top:.1f} not shown", transform=ax.transAxes,
                    va="top", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"seconds per 1,000 images ({result['machine']['cpu']}, {result['machine']['dtype']})")
    ax.set_ylabel(f"FD of the judge's features (vs {result['reference']})")
    ax.set_title(f"{result['model']}: sampler speed vs quality ({result['stage']}; marker size = steps)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["screen", "timing", "interval", "refine", "seeds"])
    parser.add_argument("--model", default="fashion-mnist")
    parser.add_argument("--reference", choices=["val", "test"], default="val")
    parser.add_argument("--num-per-class", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3, help="seeds: seeds 0 .. N-1 per cell")
    parser.add_argument("--cells", default=None,
                        help="seeds: 'frontier' (the val screen's frontier, the interval cells within the bars, the "
                             "default and the model's fast), 'interval' (the same without the screen's frontier) or "
                             "a list of default,fast (from the val seeds stage); default: frontier")
    parser.add_argument("--steps", default=",".join(map(str, STEPS)),
                        help="screen: the step counts of the grid, fastest first (default: all)")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--report-only", action="store_true", help="redraw the stage's PNG and Markdown from its JSON")
    parser.add_argument("--retime", action="store_true",
                        help="seeds: time every cell again at the end, best of 3 round-robin rounds on one batch (run "
                             "on an otherwise idle machine); these seconds choose `fast`")
    args = parser.parse_args()
    out = args.out_dir / f"sampler-frontier-{args.stage}-{args.reference}.json"
    if args.report_only:
        result = json.loads(out.read_text())
        plot(result, out.with_suffix(".png"))
        out.with_suffix(".md").write_text(f"{result['command']}\n\n{table(result)}")
        return
    pipe = MaskGIT.from_pretrained(args.model)
    extractor = load_extractor("classifier:fashion-mnist-classifier")
    reference = judge_reference(extractor, args.reference)
    labels = balanced_labels(pipe.transformer.config.num_classes, args.num_per_class)
    result = json.loads(out.read_text()) if out.is_file() else {}
    dtype = str(resolve_dtype("auto", "cpu")).removeprefix("torch.")
    result.update({"stage": args.stage, "model": args.model, "reference": f"Fashion-MNIST {args.reference} split "
                   f"({len(reference['features']):,} images)", "num_images_per_cell": len(labels),
                   "defaults": vars(pipe.sampling),
                   "machine": {"cpu": cpu_name(), "threads": torch.get_num_threads(), "dtype": dtype,
                               "capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__},
                   "command": "python benchmarks/sampler_frontier.py " + " ".join(sys.argv[1:]),
                   "default": default_cell(pipe)})
    rows = result.setdefault("rows", [])
    rows[:] = [with_defaults(r, pipe) for r in rows]
    if args.stage == "timing":
        return time_cells(pipe, labels, result, out)
    if args.stage == "screen":
        todo = [(c, 0) for c in screen_cells(pipe, [int(t) for t in args.steps.split(",")])]
    elif args.stage == "interval":
        todo = [(c, 0) for c in [default_cell(pipe)] + interval_cells(pipe)]
    elif args.stage == "refine":
        todo = [(c, 0) for c in [default_cell(pipe)] + refine_cells(pipe)]
    else:
        if args.cells == "interval":  # the default, the model's fast and the interval cells within the bars
            cells = [default_cell(pipe)] + interval_passing(args.out_dir, pipe) + model_fast(pipe)
        elif args.cells in (None, "frontier"):
            screen = json.loads((args.out_dir / "sampler-frontier-screen-val.json").read_text())
            timing = json.loads((args.out_dir / "sampler-frontier-timing-val.json").read_text())["rows"]
            screen_rows = [with_defaults(r, pipe) for r in screen["rows"]]
            for r in screen_rows:  # the quiet timing, not the screen's shared-CPU one
                r["seconds_per_1000"] = next(t["seconds_per_1000"] for t in timing if same(with_defaults(t, pipe), r))
            cells = [{k: r[k] for k in KEYS} for r in frontier(screen_rows)] + [default_cell(pipe)]
            cells += interval_passing(args.out_dir, pipe) + model_fast(pipe)
        else:
            chosen = json.loads((args.out_dir / "sampler-frontier-seeds-val.json").read_text())
            cells = [chosen[name] for name in args.cells.split(",")]
            result["fast"] = chosen.get("fast")  # marked in the table and chart
        cells = [c for i, c in enumerate(cells) if not any(same(c, d) for d in cells[:i])]
        todo = [({k: c[k] for k in KEYS}, s) for s in range(args.seeds) for c in cells]
    generate_samples(pipe, range(8), labels, seed=0)  # warm-up: inference copy, kernel choice, allocator
    print(f"{len(todo)} cells x seeds", flush=True)
    for cell, seed in todo:
        if any(same(r, cell) and r["seed"] == seed for r in rows):
            continue
        rows.append(run_cell(pipe, extractor, reference, labels, cell, seed))
        print(json.dumps(rows[-1]), flush=True)
        write_json_atomic(out, result)
    if args.stage == "seeds":
        cells = [c for i, c in enumerate(rows) if not any(same(c, d) for d in rows[:i])]
        result["summaries"] = [summarise(rows, c) for c in cells]
        if args.retime:  # the seconds of every cell again, quietly: best of 3 round-robin rounds on one batch
            quiet = retime(pipe, labels, [{k: c[k] for k in KEYS} for c in cells])
            for summary, seconds in zip(result["summaries"], quiet):
                summary["seconds_per_1000_while_scoring"] = summary["seconds_per_1000"]
                summary["seconds_per_1000"] = {"mean": seconds, "std": 0.0, "values": [seconds]}
            result["timing"] = "best of 3 round-robin rounds on one batch of 250 images (--retime)"
        if args.cells in (None, "frontier", "interval"):
            fast = choose_fast(result["summaries"], default_cell(pipe))
            result["fast"] = fast
    write_json_atomic(out, result)
    plot(result, out.with_suffix(".png"))
    out.with_suffix(".md").write_text(f"{result['command']}\n\n{table(result)}")


if __name__ == "__main__":
    main()
