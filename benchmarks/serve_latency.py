"""`maskgit serve` on this machine: seconds from the command to a served page, and per generation request.

Each repeat starts the real command (`python -m maskgit.cli serve --model M --port P`, the `maskgit`
entry point) in a fresh process, times it until the page answers HTTP 200 on 127.0.0.1, then asks for
a generation of `--num-images` images through the page's HTTP API (gradio_client), first request and
warm ones, and stops the server; then times the start-up's steps in another fresh process. Writes JSON
and a PNG plot; the machine's load is recorded with them.

    python benchmarks/serve_latency.py --out benchmarks/results/serve_latency
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from maskgit.atomic import write_json_atomic

START_LIMIT_S, GENERATE_LIMIT_S = 10.0, 5.0  # issue 12's targets


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int) -> tuple[subprocess.Popen, float]:
    """The real command in a fresh process; returns it and the seconds until the page answers."""
    begin = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "maskgit.cli", "serve", "--model", model, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
            return proc, time.perf_counter() - begin
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"maskgit serve exited with {proc.returncode}")
            time.sleep(0.05)


PHASES = """
import json, os, shutil, sys, tempfile, time
root = tempfile.mkdtemp()
os.environ.update(GRADIO_TEMP_DIR=root + "/gradio", GRADIO_ANALYTICS_ENABLED="False", MPLCONFIGDIR=root + "/mpl")
t, out = time.perf_counter(), {}
def lap(name):
    global t
    now = time.perf_counter(); out[name] = round(now - t, 3); t = now
import torch; torch.set_num_threads(1); lap("import torch")
from maskgit import MaskGIT; pipe = MaskGIT.from_pretrained(sys.argv[1]); lap("load the model")
from maskgit.app.gradio_import import import_gradio; import_gradio(); lap("import gradio")
from maskgit.app import build_app; demo = build_app(pipe, workdir=root + "/runs"); lap("build the page")
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[2]), prevent_thread_lock=True, quiet=True); lap("launch")
demo.close(); shutil.rmtree(root); print(json.dumps(out))
"""


def phase_times(model: str) -> dict:
    """Where the start-up goes, timed inside one fresh process (the same steps as `maskgit serve`)."""
    done = subprocess.run([sys.executable, "-c", PHASES, model, str(free_port())], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_generations(port: int, num_images: int, requests: int, class_name: str) -> list[float]:
    from gradio_client import Client

    with tempfile.TemporaryDirectory() as downloads:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=downloads,
                        analytics_enabled=False)
        times = []
        for seed in range(requests):
            begin = time.perf_counter()
            # class, number of images, steps, schedule, temperature, choice temperature, guidance, its schedule, seed
            client.predict(class_name, num_images, 8, "cosine", 1.0, 4.5, 0.0, "constant", seed, api_name="/generate")
            times.append(time.perf_counter() - begin)
    return times


def plot(result: dict, path: Path) -> None:
    from reporting import pyplot, save_figure

    fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.4))
    for ax, key, limit, title in ((axes[0], "start_s", START_LIMIT_S, "command -> page served (s)"),
                                  (axes[1], "generate_s", GENERATE_LIMIT_S,
                                   f"generation of {result['num_images']} images (s)")):
        for i, run in enumerate(result["runs"]):
            values = run[key] if isinstance(run[key], list) else [run[key]]
            ax.scatter([i] * len(values), values, color="C0" if key == "start_s" else "C1", zorder=3)
        ax.axhline(limit, color="red", linestyle="--", label=f"target {limit:g} s")
        ax.set_xlabel("repeat (fresh server)")
        ax.set_xticks(range(len(result["runs"])))
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, max(limit * 1.2, ax.get_ylim()[1]))
        ax.legend(fontsize=8)
    fig.suptitle(f"maskgit serve --model {result['model']} on {result['cpus']} CPUs "
                 f"(load average {result['load_average_before'][0]:.1f} before)", fontsize=10)
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fashion-mnist")
    parser.add_argument("--class-name", default="Sneaker", help="class picked in the generation tab")
    parser.add_argument("--num-images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="fresh servers started")
    parser.add_argument("--requests", type=int, default=4, help="generation requests per server")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_latency"))
    args = parser.parse_args()

    load_before = os.getloadavg()
    runs = []
    for repeat in range(args.repeats):
        port = free_port()
        proc, start_s = start_server(args.model, port)
        try:
            generate_s = time_generations(port, args.num_images, args.requests, args.class_name)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        runs.append({"start_s": round(start_s, 3), "generate_s": [round(t, 3) for t in generate_s],
                     "start_phases_s": phase_times(args.model)})
        print(f"repeat {repeat}: page served after {start_s:.2f} s; generations "
              f"{', '.join(f'{t:.2f}' for t in generate_s)} s", flush=True)
    starts = [r["start_s"] for r in runs]
    gens = [t for r in runs for t in r["generate_s"]]
    result = {
        "model": args.model, "num_images": args.num_images, "runs": runs,
        "start_s_max": max(starts), "start_s_median": sorted(starts)[len(starts) // 2],
        "generate_s_max": max(gens), "generate_s_first_request_max": max(r["generate_s"][0] for r in runs),
        "generate_s_median": sorted(gens)[len(gens) // 2],
        "meets_targets": max(starts) < START_LIMIT_S and max(gens) < GENERATE_LIMIT_S,
        "targets_s": {"start": START_LIMIT_S, "generate": GENERATE_LIMIT_S},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(), "command": " ".join(sys.argv),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out.with_suffix(".json"), result)
    plot(result, args.out.with_suffix(".png"))
    print(json.dumps({k: result[k] for k in ("start_s_max", "generate_s_max", "meets_targets")}))


if __name__ == "__main__":
    main()
