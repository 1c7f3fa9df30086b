"""The browser editor's page (Gradio): one tab per task of the paper, wired to `callbacks.Callbacks`.

Tabs: generation, inpainting, outpainting / extrapolation, class-conditional editing. Images are shown
upscaled (nearest) for painting and viewing; downloads are native-size PNGs plus settings.json.
A queue runs one request at a time; bad input shows as an error message in the page.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..decoding import SAMPLERS
from ..schedules import SCHEDULES
from .callbacks import UNCONDITIONAL, Callbacks, Result
from .gradio_import import import_gradio
from .uploads import Limits

gr = import_gradio()

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "assets" / "fashion-mnist-test"
SAMPLING = ("steps", "schedule", "temperature", "choice_temperature", "guidance_scale", "guidance_schedule", "sampler",
            "cheap_passes", "seed")
BRUSH_COLOR = "#ff3b30"


def build_app(pipe, *, workdir: str | Path | None = None, model_name: str = "MODEL", limits: Limits | None = None,
              examples_dir: str | Path | None = EXAMPLES_DIR):
    """A `gradio.Blocks` page for `pipe` (a `maskgit.MaskGIT`); results go under `workdir` (default: a new
    temporary folder), Gradio's own copies under $GRADIO_TEMP_DIR (`maskgit serve` points it inside its
    temporary folder). Launch it with `.launch(server_name="127.0.0.1", max_file_size=...)`."""
    cb = Callbacks(pipe, workdir or tempfile.mkdtemp(prefix="maskgit-app-"), model_name=model_name, limits=limits)
    examples = _examples(cb, examples_dir)
    h = w = cb.size
    with gr.Blocks(title="maskgit editor", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"## MaskGIT editor: `{model_name}`\nThe model works on {w}x{h} images "
                    f"({cb.channels} channel{'s' * (cb.channels > 1)}). Images are **shown {cb.scale}x larger** "
                    f"(nearest neighbour) for painting; results and downloads are at the native {w}x{h} "
                    "(wider for outpainting). Each download holds the PNGs, `settings.json` and the `maskgit` "
                    "command that reproduces the run. One request runs at a time.")
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                gen = _generation_tab(cb)
            with gr.Tab("Inpaint", id="inpaint"):
                inp = _inpaint_tab(cb, examples)
            with gr.Tab("Outpaint / extrapolate", id="outpaint"):
                outp = _outpaint_tab(cb, examples)
            with gr.Tab("Edit a class", id="edit"):
                edit = _edit_tab(cb, examples)
        targets = [inp["source"], inp["canvas"], outp["source"], outp["canvas"], edit["source"], edit["canvas"]]
        gen["send"].click(_page(lambda images, i: _send(cb, images, i)), [gen["images"], gen["selected"]],
                          targets, queue=False)
    demo.queue(default_concurrency_limit=1, max_size=cb.limits.max_queue)
    demo.maskgit_callbacks = cb  # for tests and `serve`
    return demo


def _page(fn):
    """Show user errors as an error message in the page."""
    def run(*args):
        try:
            return fn(*args)
        except (ValueError, KeyError, OSError) as err:
            raise gr.Error(str(err.args[0] if isinstance(err, KeyError) and err.args else err)) from None
    return run


def _examples(cb: Callbacks, directory) -> dict[str, str]:
    """Bundled example images that fit the model (name -> path)."""
    if directory is None or not Path(directory).is_dir():
        return {}
    found = {}
    for path in sorted(Path(directory).glob("*.png")):
        try:
            cb.load(str(path))
        except ValueError:
            continue
        found[path.stem] = str(path)
    return found


def _editor_value(cb: Callbacks, image: np.ndarray) -> dict:
    shown = cb.display(image)
    return {"background": shown, "layers": [], "composite": shown}


def _send(cb: Callbacks, images: list | None, index: int | None):
    if not images:
        raise ValueError("generate images first, then click one to select it")
    image = images[min(index or 0, len(images) - 1)]
    shown = cb.display(image)
    return image, _editor_value(cb, image), image, shown, image, _editor_value(cb, image)


def _sampling_controls(cb: Callbacks, steps: int | None = None) -> list:
    """steps, schedule, temperatures, guidance and seed (the model's defaults)."""
    s = cb.pipe.sampling
    with gr.Accordion("Decoding settings", open=steps is None):
        with gr.Row():
            controls = [gr.Slider(1, cb.limits.max_steps, value=steps or s.steps, step=1, label="steps"),
                        gr.Dropdown(list(SCHEDULES), value=s.schedule, label="mask schedule",
                                    allow_custom_value=True, info="or powX, e.g. pow1.5"),
                        gr.Number(s.temperature, label="temperature", info="divides the logits")]
        with gr.Row():
            controls += [gr.Number(s.choice_temperature, label="choice temperature",
                                   info="Gumbel noise on confidences (official 4.5)"),
                         gr.Number(s.guidance_scale, label="guidance scale", info="classifier-free guidance, 0 = off"),
                         gr.Radio(["constant", "linear", "power-cosine"], value=s.guidance_schedule,
                                  label="guidance schedule")]
        with gr.Row():
            controls += [gr.Radio(list(SAMPLERS), value=s.sampler, label="sampler",
                                  info="confidence: official; halton: positions in a 2-D Halton order; grouped: "
                                       "ReCAP's grouped decoding (with cheap passes)"),
                         gr.Number(s.cheap_passes, label="cheap passes", precision=0,
                                   info="cached passes after each full forward pass (0 = off)"),
                         gr.Number(0, label="seed", precision=0, info="same seed, same result")]
    return controls


def _class_picker(cb: Callbacks, label: str, optional: bool, elem_id: str):
    choices = ([UNCONDITIONAL] if optional or not cb.class_names else []) + cb.class_names
    return gr.Dropdown(choices, value=choices[0], label=label, elem_id=elem_id)


def _outputs(cb: Callbacks, prefix: str) -> tuple:
    with gr.Row():
        shown = [gr.Image(label=f"{name}, shown {cb.scale}x", type="numpy", format="png", interactive=False,
                          buttons=["fullscreen"], elem_id=f"{prefix}-{key}")
                 for key, name in (("original", "original"), ("mask", "mask (white = regenerated)"),
                                   ("result", "result"))]
    return (shown, *_downloads(prefix))


def _downloads(prefix: str) -> tuple:
    """The run's files (native-size PNGs + settings.json) and its settings, shown."""
    files = gr.File(label="downloads: native-size PNGs + settings.json", file_count="multiple", interactive=False,
                    elem_id=f"{prefix}-files")
    settings = gr.JSON(label="settings of this run (the command in it reproduces the result)",
                       elem_id=f"{prefix}-settings")
    return files, settings


def _source_row(cb: Callbacks, examples: dict, prefix: str):
    """Upload / example picker / resize; returns (upload button, example dropdown, resize checkbox, state)."""
    with gr.Row():
        upload = gr.UploadButton("Upload an image", file_types=["image"], elem_id=f"{prefix}-upload")
        example = gr.Dropdown([""] + list(examples), value="", label="or pick an example", visible=bool(examples),
                              elem_id=f"{prefix}-example")
        resize = gr.Checkbox(False, label=f"resize to {cb.size}x{cb.size}", info="otherwise other sizes are refused",
                             elem_id=f"{prefix}-resize")
    return upload, example, resize, gr.State(None)


def _wire_source(cb, examples, upload, example, resize, state, canvas, editor: bool):
    def load(path, resize_):
        image = cb.load(path, bool(resize_))
        return image, _editor_value(cb, image) if editor else cb.display(image)

    upload.upload(_page(load), [upload, resize], [state, canvas])
    example.input(_page(lambda name: load(examples[name], False) if name else (None, None)), [example],
                  [state, canvas])


def _show(cb: Callbacks, image: np.ndarray, result: Result) -> tuple:
    mask = result.mask[..., None].astype(np.uint8) * 255
    return (cb.display(image), cb.display(mask), cb.display(result.images[0]), result.files, result.settings)


def _generation_tab(cb: Callbacks) -> dict:
    with gr.Row():
        label = _class_picker(cb, "class", optional=False, elem_id="generate-class")
        num = gr.Slider(1, cb.limits.max_images, value=min(8, cb.limits.max_images), step=1, label="number of images",
                        elem_id="generate-num")
    controls = _sampling_controls(cb)
    run = gr.Button("Generate", variant="primary", elem_id="generate-run")
    gallery = gr.Gallery(label=f"results, shown {cb.scale}x (click one to select it)", columns=8, format="png",
                         elem_id="generate-gallery", height=340, object_fit="contain")
    send = gr.Button("Send the selected image to the editing tabs", elem_id="generate-send")
    steps = gr.Image(label="decoding steps: one row per image, one column per step (grey = still masked)",
                     type="numpy", format="png", interactive=False, elem_id="generate-steps")
    files, settings = _downloads("generate")
    images, selected = gr.State([]), gr.State(0)

    def generate(class_name, num_images, *values):
        r = cb.generate(class_name, num_images, **dict(zip(SAMPLING, values)))
        strip_scale = max(1, min(cb.scale, 960 // r.steps.shape[1]))
        return [cb.display(x) for x in r.images], r.images, 0, cb.display(r.steps, strip_scale), r.files, r.settings

    run.click(_page(generate), [label, num, *controls], [gallery, images, selected, steps, files, settings],
              api_name="generate")
    gallery.select(_selected, None, selected, queue=False)
    return {"send": send, "images": images, "selected": selected}


def _selected(evt: gr.SelectData):  # Gradio passes the click event by this annotation
    return evt.index


def _inpaint_tab(cb: Callbacks, examples: dict) -> dict:
    upload, example, resize, state = _source_row(cb, examples, "inpaint")
    canvas = _canvas(cb, "paint the region to regenerate", "inpaint-canvas")
    with gr.Row():
        label = _class_picker(cb, "class for the new content", optional=True, elem_id="inpaint-class")
        blur = gr.Slider(0, cb.size, value=cb.factor, step=1, label="blend width (pixels beyond the mask)",
                         info="0 = only painted pixels change", elem_id="inpaint-blend")
    controls = _sampling_controls(cb)
    run = gr.Button("Inpaint", variant="primary", elem_id="inpaint-run")
    shown, files, settings = _outputs(cb, "inpaint")
    _wire_source(cb, examples, upload, example, resize, state, canvas, editor=True)

    def inpaint(image, editor, class_name, blur_radius, *values):
        return _show(cb, image, cb.inpaint(image, editor, class_name, blur_radius, **dict(zip(SAMPLING, values))))

    run.click(_page(inpaint), [state, canvas, label, blur, *controls], [*shown, files, settings], api_name="inpaint")
    return {"source": state, "canvas": canvas}


def _canvas(cb: Callbacks, label: str, elem_id: str):
    side = cb.size * cb.scale
    return gr.ImageEditor(label=label, type="numpy", image_mode="RGBA", sources=[], transforms=[], layers=False,
                          brush=gr.Brush(default_size=max(2, cb.scale), colors=[BRUSH_COLOR], color_mode="fixed"),
                          format="png", canvas_size=(side, side), elem_id=elem_id, buttons=[])


def _outpaint_tab(cb: Callbacks, examples: dict) -> dict:
    upload, example, resize, state = _source_row(cb, examples, "outpaint")
    preview = gr.Image(label="image to grow", type="numpy", format="png", interactive=False, elem_id="outpaint-preview")
    mode = gr.Radio([("pad per side", "pad"), ("extrapolate to a width", "width")], value="pad", label="mode",
                    elem_id="outpaint-mode")
    f, s, lim = cb.factor, cb.size, cb.limits
    with gr.Row():
        pads = [gr.Slider(0, lim.max_pad_factor * s, value=s if side == "right" else 0, step=f,
                          label=f"{side} (pixels)", elem_id=f"outpaint-{side}")
                for side in ("left", "top", "right", "bottom")]
    width = gr.Slider(s + f, lim.max_width_factor * s, value=4 * s, step=f, label="target width (pixels)",
                      elem_id="outpaint-width", info="the paper's extrapolation: grows to the right window by window",
                      visible=False)
    mode.change(lambda m: [gr.update(visible=m == "pad")] * 4 + [gr.update(visible=m == "width")], mode,
                [*pads, width], queue=False)
    label = _class_picker(cb, "class for the new content", optional=True, elem_id="outpaint-class")
    controls = _sampling_controls(cb)
    run = gr.Button("Outpaint", variant="primary", elem_id="outpaint-run")
    shown, files, settings = _outputs(cb, "outpaint")
    _wire_source(cb, examples, upload, example, resize, state, preview, editor=False)

    def outpaint(image, mode_, left, top, right, bottom, width_, class_name, *values):
        r = cb.outpaint(image, mode_, (left, top, right, bottom), width_, class_name, **dict(zip(SAMPLING, values)))
        return _show(cb, image, r)

    run.click(_page(outpaint), [state, mode, *pads, width, label, *controls], [*shown, files, settings],
              api_name="outpaint")
    return {"source": state, "canvas": preview}


def _edit_tab(cb: Callbacks, examples: dict) -> dict:
    upload, example, resize, state = _source_row(cb, examples, "edit")
    canvas = _canvas(cb, "draw over the region to edit (or type the box below)", "edit-canvas")
    from_strokes = gr.Button("Use the drawn region's bounding box", elem_id="edit-box-from-strokes")
    s = cb.size
    with gr.Row():
        box = [gr.Number(v, label=name, precision=0, elem_id=f"edit-{key}") for key, name, v in
               zip(("x0", "y0", "x1", "y1"), ("x0", "y0", "x1 (exclusive)", "y1 (exclusive)"),
                   (s // 4, s // 4, s - s // 4, s - s // 4))]
    with gr.Row():
        label = _class_picker(cb, "target class", optional=False, elem_id="edit-class")
        start = gr.Number(2, label="start iteration", precision=0, info="official editing schedule: 12 steps from 2")
    controls = _sampling_controls(cb, steps=12)
    run = gr.Button("Edit", variant="primary", elem_id="edit-run")
    shown, files, settings = _outputs(cb, "edit")
    _wire_source(cb, examples, upload, example, resize, state, canvas, editor=True)
    from_strokes.click(_page(lambda image, editor: cb.box_from_strokes(image, editor)), [state, canvas], box)

    def edit(image, x0, y0, x1, y1, class_name, start_iter, *values):
        r = cb.edit(image, (x0, y0, x1, y1), class_name, start_iter=start_iter, **dict(zip(SAMPLING, values)))
        return _show(cb, image, r)

    run.click(_page(edit), [state, *box, label, start, *controls], [*shown, files, settings], api_name="edit")
    return {"source": state, "canvas": canvas}
