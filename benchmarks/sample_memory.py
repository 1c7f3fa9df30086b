"""Peak resident memory of `maskgit sample --num N` on the bundled model (every class), while it runs.

Runs `/usr/bin/time -v python -m maskgit.cli sample --num N ...` and, every few seconds, records the process's
peak resident memory so far (VmHWM) against the number of PNGs already on disk, so the series shows whether
memory grows with the images made (`sample` batches, streams PNGs and keeps no decoding history). At the end,
/usr/bin/time's "Maximum resident set size" is recorded. Acceptance: under 500 MB at --num 1000 (10,000 images).
Writes JSON and a PNG plot (RSS against images written). On a slow CPU, `--steps 1` gives the same memory picture
in an eighth of the transformer time (no decoding history is kept, so memory does not depend on the steps).

    OMP_NUM_THREADS=2 python benchmarks/sample_memory.py --num 1000 --out benchmarks/results/sample_memory_num1000
    OMP_NUM_THREADS=2 python benchmarks/sample_memory.py --num 1000 --steps 1 \
        --out benchmarks/results/sample_memory_num1000_steps1
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set size so far) of a live process, in MB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(found.group(1)) / 1024 if found else None


def _python_child(pid: int) -> int | None:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _count(out: Path) -> int:
    """PNGs of generated images written so far (named NNNN_class.png)."""
    return sum(1 for p in out.glob("*_*.png")) if out.is_dir() else 0


def run(num: int, model: str, batch_size: int, out: Path, every: float, timeout: float,
        steps: int | None = None) -> dict:
    command = [sys.executable, "-m", "maskgit.cli", "sample", "--model", model, "--num", str(num), "--batch-size",
               str(batch_size), *(["--steps", str(steps)] if steps else []), "--out", str(out)]
    proc = subprocess.Popen(["/usr/bin/time", "-v", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    start, series, child = time.time(), [], None
    while proc.poll() is None and time.time() - start < timeout:
        time.sleep(every)
        child = child or _python_child(proc.pid)
        rss = _peak_rss_mb(child) if child else None
        if rss is not None:
            series.append({"seconds": round(time.time() - start, 1), "images_written": _count(out),
                           "peak_rss_mb": round(rss, 1)})
            print(series[-1], flush=True)
    finished = proc.poll() is not None
    if not finished:
        proc.terminate()
    stdout, stderr = proc.communicate()
    result = {"num_per_class": num, "finished": finished, "seconds": round(time.time() - start, 1),
              "images_written": _count(out), "series": series,
              "command": " ".join(["maskgit", *command[3:-2], "--out", "OUT"])}
    if finished:
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{stderr[-2000:]}")
        result["max_rss_mb"] = round(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
                                         .group(1)) / 1024, 1)
        result["progress_bar_shown"] = "sample: 100%" in stderr  # tqdm writes to stderr
        result["grid_png_bytes"] = (out / "grid.png").stat().st_size
    else:
        result["max_rss_mb_so_far"] = max((s["peak_rss_mb"] for s in series), default=None)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fashion-mnist")
    parser.add_argument("--num", type=int, default=1000, help="images per class")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None,
                        help="decoding steps (default: the model's 8); memory does not depend on it, time does")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between memory readings")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="stop the run after this many seconds")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sample_memory"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.num, args.model, args.batch_size, Path(tmp) / "samples", args.every, args.timeout,
                     args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"model": args.model, "batch_size": args.batch_size,
                                                         **result}, indent=2) + "\n")
    from reporting import pyplot, save_figure

    fig, ax = pyplot().subplots(figsize=(5.5, 3.5))
    ax.plot([s["images_written"] for s in result["series"]], [s["peak_rss_mb"] for s in result["series"]], "-",
            label="peak RSS so far")
    ax.axhline(500, color="red", linestyle="--", label="500 MB target")
    ax.set_xlabel(f"images written (maskgit sample --num {args.num}, all classes)")
    ax.set_ylabel("MB")
    ax.set_ylim(0, 600)
    ax.legend(loc="lower right")
    save_figure(fig, args.out.with_suffix(".png"), dpi=120)


if __name__ == "__main__":
    main()
