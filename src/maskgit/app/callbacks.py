"""What each button of the browser editor (`maskgit serve`) does, with no Gradio import.

`Callbacks.generate / inpaint / outpaint / edit` check the page's values, call one public `MaskGIT`
method, and write a download folder (native-size PNGs, the settings as JSON and the equivalent
`maskgit` command) inside the app's temporary folder. Bad input raises ValueError with a message
meant for the page. Images travel as uint8 arrays (H, W, C) at the model's native size.
"""

from __future__ import annotations

import itertools
import math
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_json_atomic
from ..decoding import GUIDANCE_SCHEDULES, SAMPLERS
from ..images import make_grid, save_image
from ..sampling import sample_generators
from .uploads import Limits, display, load_upload, mask_from_layers, strokes_box, to_array, to_tensor

UNCONDITIONAL = "none (unconditional)"
SAMPLING_KEYS = ("steps", "schedule", "temperature", "choice_temperature", "guidance_scale", "guidance_schedule",
                 "sampler", "cheap_passes")
CHOICES = {"schedule": None, "guidance_schedule": GUIDANCE_SCHEDULES, "sampler": SAMPLERS}  # None: any string


@dataclass
class Result:
    """One run: native-size images for the page, the files to download and the settings that made it."""

    images: list[np.ndarray]
    files: list[str]
    settings: dict
    mask: np.ndarray | None = None  # (H, W) bool, True where content was regenerated
    steps: np.ndarray | None = None  # decoding strip: one row per image, one column per step


def _whole(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and int(value) == value


class Callbacks:
    """The app's actions on one model; every file goes under `workdir` (a temporary folder)."""

    def __init__(self, pipe, workdir: str | Path, *, model_name: str = "MODEL", limits: Limits | None = None):
        self.pipe = pipe
        self.workdir = Path(workdir)
        self.model_name = model_name
        self.limits = limits or Limits()
        cfg = pipe.tokenizer.config
        self.channels, self.size, self.factor = cfg.in_channels, cfg.image_size, cfg.downsample_factor
        self.scale = max(1, self.limits.display_size // self.size)  # nearest upscaling for the page only
        num_classes = pipe.transformer.config.num_classes
        self.class_names = list(pipe.class_names) if pipe.class_names else [str(i) for i in range(num_classes)]
        self._runs = itertools.count(1)

    # ------------------------------------------------------------------ inputs
    def load(self, path: str | None, resize: bool = False) -> np.ndarray:
        """An uploaded or picked image file -> uint8 (size, size, channels), checked against the limits."""
        return load_upload(path, self.channels, self.size, resize, self.limits)

    def display(self, image: np.ndarray, scale: int | None = None) -> np.ndarray:
        """Nearest-neighbour upscaling (default `self.scale`), as RGB, for the page."""
        return display(image, scale or self.scale)

    def label(self, choice: str | None, required: bool = False) -> int | None:
        """A class picker value -> class index (None = unconditional)."""
        if choice in (None, "", UNCONDITIONAL):
            if required:
                raise ValueError("pick the target class")
            return None
        if choice not in self.class_names:
            raise ValueError(f"unknown class {choice!r}; pick one of {self.class_names}")
        return self.class_names.index(choice)

    def sampling(self, values: dict) -> dict:
        """The decoding controls -> keyword arguments for the pipeline, checked."""
        out = {}
        for key in SAMPLING_KEYS:
            value = values.get(key)
            if value is None and key in ("sampler", "cheap_passes"):
                value = getattr(self.pipe.sampling, key)  # scripts without these controls: the model's default
            if value is None or value == "":
                raise ValueError(f"{key.replace('_', ' ')} is empty; give a value")
            if key == "steps":
                if not _whole(value) or not 1 <= value <= self.limits.max_steps:
                    raise ValueError(f"steps must be a whole number from 1 to {self.limits.max_steps}, got {value}")
                value = int(value)
            elif key == "cheap_passes":
                if not _whole(value) or not 0 <= value <= self.limits.max_steps:
                    raise ValueError(f"cheap passes must be a whole number from 0 to {self.limits.max_steps}, "
                                     f"got {value}")
                value = int(value)
            elif key in CHOICES:
                if CHOICES[key] is not None and value not in CHOICES[key]:
                    raise ValueError(f"{key.replace('_', ' ')} must be one of {list(CHOICES[key])}, got {value!r}")
            else:
                if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                    raise ValueError(f"{key.replace('_', ' ')} must be a finite number >= 0, got {value}")
                value = float(value)
            out[key] = value
        return out

    @staticmethod
    def seed(value) -> int:
        if not _whole(value) or not 0 <= value < 2**63:
            raise ValueError(f"seed must be a whole number from 0 to 2^63-1, got {value}")
        return int(value)

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(self.pipe.device).manual_seed(seed)  # as the CLI seeds it

    def _source(self, image: np.ndarray | None) -> torch.Tensor:
        if image is None:
            raise ValueError("no image yet: upload one, pick an example, or send a generated image here")
        return to_tensor(image).to(self.pipe.device)

    # ------------------------------------------------------------------ actions
    def generate(self, class_name: str | None, num_images, seed, **sampling) -> Result:
        """`MaskGIT.generate` of `num_images` images of one class, with the decoding steps."""
        if not _whole(num_images) or not 1 <= num_images <= self.limits.max_images:
            raise ValueError(f"number of images must be from 1 to {self.limits.max_images}, got {num_images}")
        num, seed, sampling = int(num_images), self.seed(seed), self.sampling(sampling)
        label = self.label(class_name, required=self.pipe.transformer.config.num_classes > 0)
        labels = None if label is None else [label] * num
        generators = sample_generators(seed, range(num), self.pipe.device)  # as `maskgit sample` seeds image i
        images, history = self.pipe.generate(labels, num_samples=None if labels else num, return_history=True,
                                             generator=generators, **sampling)
        with torch.no_grad():
            steps = self.pipe.decode_history(history)  # (B, T, C, H, W)
        strip = make_grid(steps.flatten(0, 1).float().clamp(0, 1).cpu(), nrow=steps.shape[1])
        grid = make_grid(images.float().clamp(0, 1).cpu(), nrow=num if num > 1 else None)
        name = "image" if label is None else self.class_names[label].replace("/", "-").replace(" ", "-").lower()
        folder, files = self._folder("generate"), []
        for i, image in enumerate(images):
            files.append(save_image(image, folder / f"{i:04d}_{name}.png"))
        files += [save_image(grid, folder / "grid.png"), save_image(strip, folder / "steps.png")]
        settings = {"task": "generate", "class": None if label is None else self.class_names[label],
                    "label": label, "num_images": num, "seed": seed, **sampling}
        cli = ["maskgit", "sample", "--model", self.model_name, "--num", str(num), "--show-steps"]
        cli += ["--labels", str(label)] if label is not None else []
        return self._finish(folder, files, settings, cli, [to_array(x) for x in images], steps=to_array(strip))

    def inpaint(self, image: np.ndarray | None, editor: dict | None, class_name: str | None, blur_radius, seed,
                **sampling) -> Result:
        """`MaskGIT.inpaint` of the painted region (any brush stroke over a pixel marks it)."""
        source = self._source(image)
        mask = mask_from_layers(editor, image.shape[:2], self.scale)
        if not mask.any():
            raise ValueError("the mask is empty: paint over the region to regenerate with the brush")
        blur = self._blur(blur_radius)
        label, seed, sampling = self.label(class_name), self.seed(seed), self.sampling(sampling)
        result = self.pipe.inpaint(source, torch.from_numpy(mask)[None, None].to(self.pipe.device),
                                   None if label is None else [label], blur_radius=blur,
                                   generator=self._generator(seed), **sampling)
        extra = ["--mask", "mask.png", "--blur-radius", str(blur)]
        return self._edit_result("inpaint", image, mask, result[0], label, seed, sampling,
                                 {"blur_radius": blur}, extra)

    def outpaint(self, image: np.ndarray | None, mode: str, pad, width, class_name: str | None, seed,
                 **sampling) -> Result:
        """`MaskGIT.outpaint` by (left, top, right, bottom) pixels, or `MaskGIT.extrapolate` to `width`."""
        source = self._source(image)
        label, seed, sampling = self.label(class_name), self.seed(seed), self.sampling(sampling)
        labels, g = None if label is None else [label], self._generator(seed)
        h, w = image.shape[:2]
        if mode == "width":
            width = self._whole(width, "target width")
            if width > self.limits.max_width_factor * w:
                raise ValueError(f"target width {width} is over the demo limit of {self.limits.max_width_factor * w}"
                                 f" pixels ({self.limits.max_width_factor}x the image width)")
            result = self.pipe.extrapolate(source, width, labels, generator=g, **sampling)
            pad, extra, task = (0, 0, width - w, 0), ["--width", str(width)], "extrapolate"
        else:
            pad = tuple(self._whole(p, "padding") for p in pad)
            if max(pad) > self.limits.max_pad_factor * max(h, w):
                raise ValueError(f"padding of {max(pad)} pixels is over the demo limit of "
                                 f"{self.limits.max_pad_factor * max(h, w)} pixels per side")
            result = self.pipe.outpaint(source, pad, labels, generator=g, **sampling)
            extra, task = ["--pad", ",".join(map(str, pad))], "outpaint"
        mask = np.ones(result.shape[-2:], dtype=bool)
        mask[pad[1]:pad[1] + h, pad[0]:pad[0] + w] = False
        return self._edit_result(task, image, mask, result[0], label, seed, sampling, {"pad": list(pad)}, extra,
                                 cli_task="outpaint")

    def edit(self, image: np.ndarray | None, box, class_name: str | None, seed, start_iter, **sampling) -> Result:
        """`MaskGIT.edit`: regenerate the pixel box (x0, y0, x1, y1), x1/y1 exclusive, with the target class
        (blended over one token around it, the library default)."""
        source = self._source(image)
        box = tuple(self._whole(v, "box coordinate") for v in box)
        h, w = image.shape[:2]
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ValueError(f"box {box} is outside the {w}x{h} image or empty: it needs 0 <= x0 < x1 <= {w} and "
                             f"0 <= y0 < y1 <= {h} (x1, y1 exclusive)")
        label = self.label(class_name, required=True)
        seed, sampling = self.seed(seed), self.sampling(sampling)
        start = self._whole(start_iter, "start iteration")
        result = self.pipe.edit(source, box, [label], start_iter=start, generator=self._generator(seed), **sampling)
        mask = np.zeros((h, w), dtype=bool)
        mask[y0:y1, x0:x1] = True
        extra = ["--box", ",".join(map(str, box)), "--start-iter", str(start)]
        return self._edit_result("edit", image, mask, result[0], label, seed, sampling,
                                 {"box": list(box), "start_iter": start}, extra)

    def box_from_strokes(self, image: np.ndarray | None, editor: dict | None) -> tuple[int, int, int, int]:
        """The native-pixel bounding box (x0, y0, x1, y1) of the strokes drawn over the image."""
        if image is None:
            raise ValueError("no image yet: upload one, pick an example, or send a generated image here")
        return strokes_box(mask_from_layers(editor, image.shape[:2], self.scale))

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _whole(value, what: str) -> int:
        if not _whole(value) or value < 0:
            raise ValueError(f"{what} must be a whole number >= 0, got {value}")
        return int(value)

    def _blur(self, value) -> int:
        blur = self._whole(value, "blend width")
        if blur > self.size:
            raise ValueError(f"blend width must be at most {self.size} pixels, got {blur}")
        return blur

    def _folder(self, task: str) -> Path:
        folder = self.workdir / f"{next(self._runs):04d}-{task}"
        folder.mkdir(parents=True, exist_ok=False)
        return folder

    def _edit_result(self, task, image, mask, result, label, seed, sampling, extra_settings, extra_cli,
                     cli_task=None) -> Result:
        folder = self._folder(task)
        files = [save_image(to_tensor(image)[0], folder / "input.png"),
                 save_image(torch.from_numpy(mask)[None].float(), folder / "mask.png"),
                 save_image(result, folder / "result.png")]
        settings = {"task": task, "class": None if label is None else self.class_names[label], "label": label,
                    "seed": seed, **extra_settings, **sampling}
        cli = ["maskgit", cli_task or task, "input.png", "--model", self.model_name, *extra_cli]
        cli += ["--label", str(label)] if label is not None else []
        return self._finish(folder, files, settings, cli, [to_array(result)], mask=mask)

    def _finish(self, folder: Path, files: list, settings: dict, cli: list[str], images, **extra) -> Result:
        """Add the model, the image size and the command that reproduces the run; write settings.json."""
        for key in SAMPLING_KEYS:
            cli += [f"--{key.replace('_', '-')}", str(settings[key])]
        cli += ["--seed", str(settings["seed"]), "--out", "out"]
        settings = {"model": self.model_name, **settings, "native_size": list(images[0].shape[:2]),
                    "command": shlex.join(cli)}
        files.append(write_json_atomic(folder / "settings.json", settings))
        return Result(images=list(images), files=[str(f) for f in files], settings=settings, **extra)
