"""The documentation site builds strictly, its references cover the code, and its examples run.

- `mkdocs build --strict` succeeds: no broken link, anchor, snippet or API reference.
- docs/reference/cli.md is what docs/gen_cli.py makes from the argument parser now.
- The API page documents every name in `maskgit.__all__`, and every public method of `MaskGIT` with each of its
  arguments.
- Every python and bash block of docs/**/*.md runs here, in page order, unless an HTML comment on the line right
  before it says otherwise:
      <!-- not run: REASON -->   never run; the reason is required
      <!-- run: slow -->          run only with `-m slow`
      <!-- run: slow, tiny -->    the same, with run lengths and process counts made tiny (see TINY)
  A page's blocks run in one temporary directory that holds configs/ and my_images/ (a small folder of RGB images
  in two classes, mostly 32x32); its python blocks share one namespace; a block titled `title="FILE"` is written
  to FILE there before the blocks after it run. Shell lines may call `maskgit` (run in this process), `python`,
  `accelerate launch` (CPU processes under gloo) and a few file commands; anything else must be marked not run.
"""
from __future__ import annotations

import html
import importlib
import inspect
import os
import re
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import maskgit
from maskgit.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
CODE = {"python", "py", "bash", "sh", "shell"}
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*(not run|run)\s*:\s*(.*?)\s*-->")
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.M)  # pymdownx.snippets: a file included at build time
# `tiny`: these options get at most these values: a run of a step or two, two processes, and just enough samples
# for the metrics (CAS trains on one batch of 128 or more).
TINY = {"--epochs": 1, "--max-steps": 2, "--num": 130, "--num-per-class": 13, "--num-inpaint": 10, "--num-edit": 10,
        "--num_processes": 2}
FILE_COMMANDS = {"mkdir", "cp", "ls", "cat", "echo", "rm"}


@dataclass
class Block:
    page: str
    line: int
    lang: str
    body: str
    title: str | None
    mode: str  # "fast", "slow" or "skip"
    tiny: bool
    reason: str

    @property
    def code(self) -> bool:
        return self.lang in CODE


def page_text(page: str) -> str:
    """The page as the site shows it: with the files it includes (snippets) in place."""
    return SNIPPET.sub(lambda m: (ROOT / m[1]).read_text(), (DOCS / page).read_text())


def blocks_of(page: str) -> list[Block]:
    text = page_text(page)
    found = []
    for m in FENCE.finditer(text):
        info = m["info"].strip()
        lang = info.split()[0].lower() if info else ""
        title = re.search(r'title="([^"]+)"', info)
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        marker = MARKER.fullmatch(before)
        mode, tiny, reason = "fast", False, ""
        if marker and marker[1] == "not run":
            mode, reason = "skip", marker[2]
        elif marker:
            options = {o.strip() for o in marker[2].split(",")}
            mode, tiny = ("slow" if "slow" in options else "fast"), "tiny" in options
            reason = marker[2]
        body = "\n".join(line[len(m["indent"]):] for line in m["body"].splitlines())
        found.append(Block(page, text.count("\n", 0, m.start()) + 1, lang, body, title and title[1], mode, tiny,
                           reason))
    return found


BLOCKS = {page: blocks_of(page) for page in PAGES}


# ----------------------------------------------------------------------------------------------- the site builds
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    for package in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(package, reason='the docs extra is not installed: pip install -e ".[docs]" (make test does)')
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return out


def test_strict_build(site):
    assert (site / "index.html").is_file() and (site / "reference" / "api" / "index.html").is_file()


def test_cli_page_is_generated_from_the_parser():
    sys.path.insert(0, str(DOCS))
    try:
        gen_cli = importlib.import_module("gen_cli")
    finally:
        sys.path.remove(str(DOCS))
    assert (DOCS / "reference" / "cli.md").read_text() == gen_cli.render(), \
        "docs/reference/cli.md is out of date: run `python docs/gen_cli.py`"


def test_cli_page_covers_every_command_and_option():
    import argparse

    from maskgit.cli import build_parser

    text = (DOCS / "reference" / "cli.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        section = text.split(f"\n## maskgit {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in command._actions:
            if action.help != argparse.SUPPRESS and action.option_strings and action.dest != "help":
                assert f"`{action.option_strings[-1]}`" in section, f"maskgit {name} {action.option_strings}"


def api_sections(site: Path) -> dict[str, str]:
    """id of each documented object on the API page -> the text of its entry (up to the next object)."""
    page = (site / "reference" / "api" / "index.html").read_text()
    parts = re.split(r'<h\d id="(maskgit[\w.]*)"', page)
    return {ident: html.unescape(re.sub(r"<[^>]+>", " ", body)) for ident, body in zip(parts[1::2], parts[2::2])}


def resolve(path: str):
    """The object a documented id names (None for one that is not a class attribute, e.g. set in __init__)."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:  # a method or attribute: resolve its class first
        return getattr(resolve(module), name, None)


def test_api_page_covers_the_public_api(site):
    sections = api_sections(site)
    documented = {id(resolve(ident)) for ident in sections}
    missing = [name for name in maskgit.__all__ if id(getattr(maskgit, name)) not in documented]
    assert not missing, f"maskgit.__all__ names not on docs/reference/api.md: {missing}"


def test_api_page_shows_every_pipeline_method_with_its_arguments(site):
    sections = api_sections(site)
    prefix = next(i for i in sections if resolve(i) is maskgit.MaskGIT)
    methods = [n for n, v in vars(maskgit.MaskGIT).items() if not n.startswith("_") and callable(getattr(v, "__func__", v))]
    assert {"generate", "inpaint", "outpaint", "extrapolate", "edit", "from_pretrained", "save_pretrained"} <= set(methods)
    for name in methods:
        assert f"{prefix}.{name}" in sections, f"MaskGIT.{name} is not on the API page"
        text = sections[f"{prefix}.{name}"]
        for param in inspect.signature(getattr(maskgit.MaskGIT, name)).parameters:
            if param not in ("self", "cls"):
                assert re.search(rf"\b{param}\b", text), f"MaskGIT.{name}: argument {param} not shown"


# ------------------------------------------------------------------------------------------- the blocks are marked
def test_every_marker_sits_right_before_a_code_block():
    for page in PAGES:
        lines = (DOCS / page).read_text().splitlines()
        for i, line in enumerate(lines):
            if MARKER.fullmatch(line.strip()):
                following = lines[i + 1].strip() if i + 1 < len(lines) else ""
                assert following.startswith("```") and following[3:].split()[0] in CODE, f"{page}:{i + 1}"


@pytest.mark.parametrize("page", PAGES)
def test_blocks_are_runnable_or_say_why_not(page):
    for block in BLOCKS[page]:
        where = f"{page}:{block.line}"
        if block.mode == "skip":
            assert len(block.reason) > 10, f"{where}: say why the block is not run"
        elif block.code:
            assert set(map(str.strip, block.reason.split(","))) <= {"", "slow", "tiny"}, where
            if block.lang != "python":
                for argv in shell_commands(block):
                    assert argv[0] in ("maskgit", "python", "accelerate") or argv[0] in FILE_COMMANDS, \
                        f"{where}: `{argv[0]}` cannot run in the tests: mark the block <!-- not run: REASON -->"


def tiny(option: str, value: str) -> str:
    return str(min(TINY[option], type(TINY[option])(value))) if option in TINY else value


def shell_commands(block: Block) -> list[list[str]]:
    """The block's commands (continuation lines joined, comments dropped), with `tiny` values applied."""
    commands = []
    for line in block.body.replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        if block.tiny:
            argv = [tiny(argv[i - 1], a) if i else a for i, a in enumerate(argv)]
        if argv:
            commands.append(argv)
    return commands


# ---------------------------------------------------------------------------------------------- the blocks run
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_command(argv: list[str], where: str) -> None:
    if argv[0] == "maskgit":
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)  # each command as in a fresh process
        try:
            code = main(argv[1:])
        except SystemExit as exit:  # --help
            code = exit.code
        assert code == 0, f"{where}: {shlex.join(argv)} exited with {code}"
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if argv[0] == "python":
        command = [sys.executable, *argv[1:]]
    elif argv[:2] == ["accelerate", "launch"]:  # a free port first: the command's own, if it names one, wins
        command = [sys.executable, "-m", "accelerate.commands.launch", "--main_process_port", str(free_port()),
                   *argv[2:]]
    else:
        command = argv
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    print(result.stdout)  # for the checks after a page (capfd)
    assert result.returncode == 0, f"{where}: {shlex.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"


def run_page(page: str, modes: set[str], workspace: Path, monkeypatch) -> None:
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("XDG_CACHE_HOME", str(workspace / ".cache"))  # e.g. `maskgit metrics`' reference statistics
    for folder in ("configs",):
        (workspace / folder).symlink_to(ROOT / folder)
    make_folder(workspace / "my_images")
    namespace: dict = {"__name__": "__docs__"}
    for block in BLOCKS[page]:
        where = f"docs/{page}:{block.line}"
        if block.title and not block.code:
            (workspace / block.title).write_text(block.body + "\n")
        elif block.code and block.mode in modes:
            if block.lang in ("python", "py"):
                exec(compile(block.body, where, "exec"), namespace)
            else:
                for argv in shell_commands(block):
                    run_command(argv, where)


def pages_with(mode: str) -> list[str]:
    return [page for page in PAGES if any(b.code and b.mode == mode for b in BLOCKS[page])]


@pytest.mark.parametrize("page", pages_with("fast"))
def test_page_examples_run(page, tmp_path, monkeypatch):
    run_page(page, {"fast"}, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("page", pages_with("slow"))
def test_page_examples_run_slow(page, tmp_path, monkeypatch, capfd):
    run_page(page, {"fast", "slow"}, tmp_path, monkeypatch)
    out = capfd.readouterr().out
    if page in AFTER:
        AFTER[page](tmp_path, out)


# ------------------------------------------------------------------- what the worked examples must have produced
OWN_IMAGES = "guides/own-images.md"


def test_own_images_example_needs_no_config_file():
    commands = [argv for b in BLOCKS[OWN_IMAGES] if b.code and b.mode != "skip" for argv in shell_commands(b)]
    names = [argv[1] for argv in commands if argv[0] == "maskgit"]
    assert names[:11] == ["presets", "train-tokenizer", "eval-tokenizer", "train", "sample", "inpaint", "outpaint",
                          "edit", "train-classifier", "evaluate", "evaluate-editing"]
    first = next(b for b in BLOCKS[OWN_IMAGES] if b.code)
    assert not any("--config" in c or "--preset" in c for c in shell_commands(first))  # no hand-written config


def own_images_outputs(workspace: Path, out: str) -> None:
    assert "nearest preset rgb-32" in out and "resizing 6 of 24 images" in out and "plan: 1 steps" in out
    expected = ["runs/tok/final/tokenizer.safetensors", "results/tok.json", "results/tok.png",
                "runs/tf/final/config.json", "runs/tf/final/transformer.safetensors", "samples/grid.png",
                "samples/0000_cat.png", "samples/0016_dog.png", "samples/sampling.json", "edits/000_inpaint.png",
                "edits/000_outpaint.png", "edits/000_edit.png", "runs/judge/classifier.safetensors",
                "results/my_images.json", "results/my_images.png", "results/my_images_editing.json",
                "results/my_images_editing.png"]
    assert not [p for p in expected if not (workspace / p).is_file()]
    assert Image.open(workspace / "edits/000_outpaint.png").size == (48, 32)
    assert Image.open(workspace / "samples/0000_cat.png").mode == "RGB"


def multi_gpu_outputs(workspace: Path, out: str) -> None:
    assert "training on 2 process(es)" in out
    assert (workspace / "runs/tf-cluster/final/transformer.safetensors").is_file()


AFTER = {OWN_IMAGES: own_images_outputs, "guides/multi-gpu.md": multi_gpu_outputs}
