"""`maskgit serve`: load a model, start the editor on 127.0.0.1 (unless told otherwise), clean up on exit.

Every file the app and Gradio write (uploads, results, downloads) goes under one temporary folder,
removed when the server stops. A short warm-up decode runs before the first request.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from .uploads import Limits

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve(model: str, *, host: str = "127.0.0.1", port: int = 7860, device: str = "cpu", threads: int | None = 1,
          limits: Limits | None = None, block: bool = True):
    """Serve the editor for `model` (a bundled name or a save_pretrained directory).

    `threads` sets torch's CPU threads (None: torch's default); one request runs at a time, and on a
    shared CPU one thread is the fastest for small models (more threads spin against other processes).
    Returns the launched `gradio.Blocks` (already closed when `block`); with `block=False` the caller
    must call `.close()` and remove `demo.maskgit_workdir`.
    """
    if not 0 < port < 65536:
        raise ValueError(f"--port must be from 1 to 65535, got {port}")
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)
    start = time.perf_counter()
    limits = limits or Limits()
    workdir = Path(tempfile.mkdtemp(prefix="maskgit-serve-"))
    # Gradio reads these when first imported: its uploads and cache go inside our temporary folder.
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["MPLCONFIGDIR"] = str(workdir / "matplotlib")  # Gradio imports matplotlib, which caches fonts
    # torch may make an inductor cache folder (torch.compile, reference decompositions): keep it in here too.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(workdir / "torchinductor")
    demo = None
    try:
        demo = _launch(model, host, port, device, limits, workdir)
        print(f"maskgit editor for {model} on http://{_url_host(host)}:{port} (ready in "
              f"{time.perf_counter() - start:.1f} s; files under {workdir}, removed on exit; Ctrl+C stops)",
              flush=True)
        if host not in LOCAL_HOSTS:
            print(f"warning: listening on {host}: anyone who can reach this machine can use the editor", flush=True)
        if block:
            _stop_on_signals()
            demo.block_thread()
    except BaseException:
        _stop(demo, workdir)
        raise
    if block:
        _stop(demo, workdir)
    return demo


def _launch(model, host, port, device, limits, workdir):
    from ..pipeline import MaskGIT

    pipe = MaskGIT.from_pretrained(model, device=device)
    # The warm-up decode (torch's lazy initialisation) runs on the other core while Gradio is imported.
    warm_up = threading.Thread(target=_warm_up, args=(pipe,), daemon=True)
    warm_up.start()
    from .ui import build_app  # imports Gradio

    demo = build_app(pipe, workdir=workdir / "runs", model_name=str(model), limits=limits)
    demo.maskgit_workdir = workdir
    demo.maskgit_warm_up = warm_up
    demo.launch(server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=True,
                max_file_size=limits.max_upload_bytes, quiet=True, footer_links=[])
    return demo


def _warm_up(pipe) -> None:
    """One generation, so that the first request does not pay for torch's lazy initialisation."""
    import torch

    labels = [0] * 8 if pipe.transformer.config.num_classes else None
    _, history = pipe.generate(labels, num_samples=None if labels else 8, return_history=True)
    with torch.no_grad():
        pipe.decode_history(history)


def _stop_on_signals() -> None:
    """Ctrl+C and SIGTERM stop the server (also when started in the background, where SIGINT is ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _stop(demo, workdir: Path) -> None:
    if demo is not None:
        demo.close()
        if hasattr(demo, "maskgit_warm_up"):
            demo.maskgit_warm_up.join()  # torch must not be running when the interpreter exits
    shutil.rmtree(workdir, ignore_errors=True)
