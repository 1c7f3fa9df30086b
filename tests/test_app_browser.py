"""`maskgit serve` end to end in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Starts the real command on 127.0.0.1 with the bundled model, then generates a class, paints a mask and
inpaints, outpaints, extrapolates and edits a box, checking every result image (size on the page,
native size of the download, pixels outside the painted region equal to the input), the in-page error
messages, and that the server writes nothing outside its temporary folder, which it removes on exit.
"""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SRC = Path(__file__).resolve().parents[1] / "src"
ASSETS = SRC / "maskgit" / "assets" / "fashion-mnist-test"
SCALE, SIZE, FACTOR = 10, 28, 4  # the bundled model: 28x28 grayscale, shown 10x, tokens of 4x4 pixels
EXTERNAL: list[str] = []  # requests the page made to anywhere but 127.0.0.1
SCREENSHOTS = os.environ.get("MASKGIT_SCREENSHOTS")  # a folder: save the README's screenshot of each tab there


def _missing() -> str | None:
    for module, hint in (("playwright", "pip install playwright"), ("gradio", "pip install 'maskgit[app]'")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed ({hint})"
    if not Path(CHROMIUM).is_file():
        return "no Chromium browser installed (apt-get install chromium); Playwright's own download is not used"
    return None


if _missing():
    pytest.skip(_missing(), allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`maskgit serve` in a subprocess whose working, home and temporary folders are empty test folders."""
    root = tmp_path_factory.mktemp("serve")
    dirs = {name: root / name for name in ("cwd", "home", "tmp")}
    for d in dirs.values():
        d.mkdir()
    port = _free_port()
    env = {**os.environ, "HOME": str(dirs["home"]), "TMPDIR": str(dirs["tmp"]), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "maskgit.cli", "serve", "--model", "fashion-mnist", "--port",
                             str(port)], cwd=dirs["cwd"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"server did not start: {proc.stdout.read() if proc.poll() is not None else ''}")
                time.sleep(0.5)
        yield {"url": url, "proc": proc, **dirs}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # Nothing written outside the temporary folder, which is gone after the server stopped.
    assert not list(dirs["cwd"].iterdir()), list(dirs["cwd"].iterdir())
    assert not list(dirs["tmp"].iterdir()), list(dirs["tmp"].iterdir())
    assert not [p for p in dirs["home"].rglob("*") if p.is_file()], list(dirs["home"].rglob("*"))


@pytest.fixture(scope="module")
def page(server):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.set_default_timeout(120_000)  # a shared CPU can be slow
        local = ("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:")
        page.on("request", lambda r: None if r.url.startswith(local) else EXTERNAL.append(r.url))
        page.goto(server["url"])
        page.wait_for_selector("#generate-run")
        yield page
        browser.close()


# ---------------------------------------------------------------- page helpers
def tab(page, name):
    page.get_by_role("tab", name=name).click()


def choose(page, elem_id, option):
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).click()


def set_number(page, selector, value):
    box = page.locator(f"{selector} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


def links(page, prefix) -> dict[str, str]:
    found = page.eval_on_selector_all(f"#{prefix}-files a[href]", "els => els.map(e => e.href)")
    return {u.rsplit("/", 1)[-1]: u for u in found}


def run(page, prefix, expected: int) -> dict[str, np.ndarray | dict]:
    """Click the tab's run button, wait for new downloads, and fetch them (PNGs as arrays)."""
    before = links(page, prefix)
    page.click(f"#{prefix}-run")
    deadline = time.time() + 120
    while not (len(now := links(page, prefix)) >= expected and now != before):
        assert time.time() < deadline, f"no result in the {prefix} tab"
        time.sleep(0.3)
    out = {}
    for name, url in now.items():
        data = urllib.request.urlopen(url).read()
        out[name] = json.loads(data) if name.endswith(".json") else np.asarray(Image.open(io.BytesIO(data)))
    return out


def shown_size(page, selector) -> tuple[int, int]:
    """(width, height) of the image displayed by a component, in image pixels."""
    page.wait_for_selector(f"{selector} img")
    return tuple(page.eval_on_selector(f"{selector} img", "e => [e.naturalWidth, e.naturalHeight]"))


def paint(page, canvas_id, start, end):
    """Drag the brush from `start` to `end`, in native pixels of the image shown at the canvas centre."""
    box = page.locator(f"#{canvas_id} canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    zoom = float(page.inner_text(f"#{canvas_id} .zoom-number").strip("%")) / 100
    to_screen = lambda x, y: (cx + (x - SIZE / 2) * SCALE * zoom, cy + (y - SIZE / 2) * SCALE * zoom)
    page.mouse.move(*to_screen(*start))
    page.mouse.down()
    for t in np.linspace(0, 1, 12):
        page.mouse.move(*to_screen(start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1])))
    page.mouse.up()
    time.sleep(0.5)


def upload(page, prefix, path):
    with page.expect_file_chooser() as chooser:
        page.click(f"#{prefix}-upload")
    chooser.value.set_files(str(path))


def snapshot(page, name):
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def error_shown(page, text):
    page.wait_for_selector(f".toast-body:has-text({json.dumps(text)})", timeout=60_000)
    for close in page.locator(".toast-close").all():
        close.click()


def far_from(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels farther than `radius` (Chebyshev) from every True pixel of `mask`."""
    grown = mask.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            grown |= np.roll(np.roll(mask, dy, 0), dx, 1) & _inside(mask.shape, dy, dx)
    return ~grown


def _inside(shape, dy, dx):
    keep = np.zeros(shape, dtype=bool)
    h, w = shape
    keep[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = True
    return keep


# ---------------------------------------------------------------- the tests
def test_generate_then_inpaint_outpaint_extrapolate_and_edit(page):
    choose(page, "generate-class", "Sneaker")
    set_number(page, "#generate-num", 4)
    gen = run(page, "generate", expected=7)
    samples = [gen[f"{i:04d}_sneaker.png"] for i in range(4)]
    assert all(s.shape == (SIZE, SIZE) for s in samples)  # native-size downloads
    assert gen["settings.json"]["class"] == "Sneaker" and gen["settings.json"]["num_images"] == 4
    shown = page.eval_on_selector_all("#generate-gallery img", "els => els.map(e => [e.naturalWidth, e.naturalHeight])")
    assert len(shown) >= 4 and all(s == [SIZE * SCALE] * 2 for s in shown)
    snapshot(page, "generate")
    page.click("#generate-send")  # the first image goes to every editing tab

    tab(page, "Inpaint")
    page.wait_for_selector("#inpaint-canvas canvas")
    paint(page, "inpaint-canvas", (8, 10), (20, 16))
    set_number(page, "#inpaint-blend", 0)  # only painted pixels may change
    inp = run(page, "inpaint", expected=4)
    mask = inp["mask.png"] > 127
    assert np.array_equal(inp["input.png"], samples[0])
    assert inp["result.png"].shape == (SIZE, SIZE) and mask.any() and not mask.all()
    ys, xs = np.nonzero(mask)  # the mask lies where the stroke went (brush radius ~1 native pixel)
    assert 5 <= xs.min() and xs.max() <= 23 and 7 <= ys.min() and ys.max() <= 19
    assert np.array_equal(inp["result.png"][~mask], samples[0][~mask])
    assert shown_size(page, "#inpaint-result") == (SIZE * SCALE, SIZE * SCALE)
    snapshot(page, "inpaint")

    tab(page, "Outpaint / extrapolate")
    out = run(page, "outpaint", expected=4)  # default: 28 pixels to the right
    assert out["result.png"].shape == (SIZE, 2 * SIZE)
    assert np.array_equal(out["result.png"][:, :SIZE], samples[0])
    assert shown_size(page, "#outpaint-result") == (2 * SIZE * SCALE, SIZE * SCALE)
    page.get_by_label("extrapolate to a width").check()
    set_number(page, "#outpaint-width", 3 * SIZE)
    ext = run(page, "outpaint", expected=4)
    assert ext["result.png"].shape == (SIZE, 3 * SIZE) and ext["settings.json"]["task"] == "extrapolate"
    assert np.array_equal(ext["result.png"][:, :SIZE], samples[0])
    snapshot(page, "outpaint")

    tab(page, "Edit a class")
    page.wait_for_selector("#edit-canvas canvas")
    paint(page, "edit-canvas", (4, 4), (12, 14))
    page.click("#edit-box-from-strokes")
    page.wait_for_function("() => document.querySelector('#edit-x1 input').value !== '21'")
    box = [int(page.input_value(f"#edit-{k} input")) for k in ("x0", "y0", "x1", "y1")]
    assert 1 <= box[0] <= 5 and 1 <= box[1] <= 5 and 10 <= box[2] <= 16 and 12 <= box[3] <= 18, box
    choose(page, "edit-class", "Trouser")
    edit = run(page, "edit", expected=4)
    box_mask = np.zeros((SIZE, SIZE), dtype=bool)
    box_mask[box[1]:box[3], box[0]:box[2]] = True
    assert edit["settings.json"]["box"] == box and edit["settings.json"]["class"] == "Trouser"
    assert np.array_equal(edit["mask.png"] > 127, box_mask)
    keep = far_from(box_mask, FACTOR)  # the blend reaches one token (4 px) beyond the box
    assert np.array_equal(edit["result.png"][keep], samples[0][keep])
    assert shown_size(page, "#edit-result") == (SIZE * SCALE, SIZE * SCALE)
    snapshot(page, "edit")
    assert not EXTERNAL, EXTERNAL  # the page loads nothing from the internet


def test_bad_input_shows_errors_in_the_page(page, tmp_path):
    tab(page, "Inpaint")
    (tmp_path / "notes.png").write_text("not an image")
    upload(page, "inpaint", tmp_path / "notes.png")
    error_shown(page, "is not an image file")
    Image.new("L", (30, 30)).save(tmp_path / "big.png")
    upload(page, "inpaint", tmp_path / "big.png")
    error_shown(page, "the model works on 28x28")
    upload(page, "inpaint", sorted(ASSETS.glob("*.png"))[0])
    page.wait_for_selector("#inpaint-canvas canvas")
    time.sleep(1)
    page.click("#inpaint-run")  # nothing painted on the new image
    error_shown(page, "the mask is empty")

    tab(page, "Edit a class")
    choose(page, "edit-example", "1_trouser_test00002")  # a bundled example
    page.wait_for_selector("#edit-canvas canvas")
    page.locator("#edit-x1 input").fill("40")
    page.click("#edit-run")
    error_shown(page, "is outside the 28x28 image")
