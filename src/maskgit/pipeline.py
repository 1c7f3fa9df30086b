"""The MaskGIT facade: a VQGAN tokenizer and a bidirectional transformer behind one object.

`MaskGIT.generate` samples class-conditional images by iterative parallel decoding;
`fill_tokens` is the one entry to the decoding loop (generation and every editing task use it);
`save_pretrained` / `from_pretrained` store both networks as safetensors plus one JSON config.
A causal transformer (the autoregressive baseline) is sampled token by token (`sample_autoregressive`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

from . import editing
from .atomic import write_json_atomic
from .bundled import CONFIG_NAME, bundled_models, bundled_or_path
from .cached_passes import CachedPasses
from .class_names import class_index
from .config import ModelConfig, SamplingConfig, SamplingPreset, from_dict, to_dict
from .decoding import GeneratorArg, decode, guided_logits_fn
from .fastpath import autocast, fast_forward, head_at_unknown_only, inference_copy, keep_freed_memory, resolve_dtype
from .transformer import MaskGITTransformer
from .vq import VQGAN
from .weights import empty_module, load_weights, save_weights

TOKENIZER_WEIGHTS = "tokenizer.safetensors"
TRANSFORMER_WEIGHTS = "transformer.safetensors"

Labels = torch.Tensor | Sequence[int | str] | None


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device that exists on this machine, or a clear error."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"invalid device {device!r} ({err}); use cpu, cuda, cuda:1, mps ...") from None
    if device.type == "cuda" and (not torch.cuda.is_available()
                                  or (device.index or 0) >= torch.cuda.device_count()):
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        raise ValueError(f"device {device} is not available ({found} CUDA device(s) here); use the cpu device "
                         f"(--device cpu)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps is not available on this machine; use the cpu device (--device cpu)")
    return device


class MaskGIT(nn.Module):
    """Tokenizer + transformer, with sampling defaults and class names."""

    default_dtype: str | torch.dtype = "float32"  # compute dtype of sampling; from_pretrained sets "auto"

    def __init__(self, tokenizer: VQGAN, transformer: MaskGITTransformer, sampling: SamplingConfig | None = None,
                 class_names: Sequence[str] = (), sampling_presets: Sequence[SamplingPreset] = ()):
        super().__init__()
        self.tokenizer = tokenizer
        self.transformer = transformer
        self.sampling = sampling or SamplingConfig()
        self.class_names = tuple(class_names)
        self.sampling_presets = tuple(sampling_presets)  # named settings besides the defaults, e.g. "fast"
        self.config  # validates that the two networks fit together

    @property
    def config(self) -> ModelConfig:
        return ModelConfig(tokenizer=self.tokenizer.config, transformer=self.transformer.config,
                           sampling=self.sampling, class_names=self.class_names,
                           sampling_presets=self.sampling_presets)

    @classmethod
    def from_config(cls, config: ModelConfig) -> "MaskGIT":
        """A randomly initialised model."""
        return cls(VQGAN(config.tokenizer), MaskGITTransformer(config.transformer), config.sampling, config.class_names,
                   config.sampling_presets)

    def with_tokenizer(self, tokenizer: VQGAN) -> "MaskGIT":
        """This model with another tokenizer that makes the same codes: one whose decoder alone was fine-tuned
        (`train-tokenizer --init-from` with `trainable: decoder`). The transformer, sampling defaults and class
        names are kept.

        Raises:
            ValueError: the tokenizer's network, encoder or codebook differ from this model's (its codes would
                mean other things to the transformer).
        """
        if tokenizer.config != self.tokenizer.config:
            raise ValueError(f"the tokenizer's config differs from the model's ({tokenizer.config} vs "
                             f"{self.tokenizer.config}); only a decoder fine-tuned from this model's tokenizer fits")
        ours = self.tokenizer.state_dict()
        for name, value in tokenizer.state_dict().items():
            if not name.startswith("decoder.") and not torch.equal(value.to(ours[name]), ours[name]):
                raise ValueError(f"the tokenizer's {name} differs from the model's: its codes would mean other "
                                 f"things to the transformer; only a decoder fine-tuned from this model's tokenizer "
                                 f"(trainable: decoder) fits")
        model = type(self)(copy.deepcopy(tokenizer).to(self.device).train(self.tokenizer.training),
                           self.transformer, self.sampling, self.class_names,
                           self.sampling_presets)  # the transformer is shared
        model.default_dtype = self.default_dtype
        return model

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | Path, *, dtype: torch.dtype | None = None) -> Path:
        """Write config.json, tokenizer.safetensors and transformer.safetensors (each atomically).

        `dtype=torch.float16` halves the files (weights are cast back to float32 on loading).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for module, name in ((self.tokenizer, TOKENIZER_WEIGHTS), (self.transformer, TRANSFORMER_WEIGHTS)):
            save_weights(module if dtype is None else copy.deepcopy(module).to(dtype), directory / name)
        write_json_atomic(directory / CONFIG_NAME, to_dict(self.config))
        return directory

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, device: str | torch.device = "cpu",
                        dtype: str | torch.dtype = "auto") -> "MaskGIT":
        """Load a bundled model by name (see `bundled_models()`) or a directory from `save_pretrained`.

        `dtype` is the compute dtype of sampling (weights stay float32): "auto" picks the fastest for the
        device (bf16 on CUDA and on CPUs with native bf16, float32 elsewhere; see `maskgit.fastpath`).
        """
        device = resolve_device(device)
        resolve_dtype(dtype, device)  # a bad name fails before loading
        directory = bundled_or_path(name_or_path, CONFIG_NAME)
        if not (directory / CONFIG_NAME).is_file():
            raise FileNotFoundError(
                f"{str(name_or_path)!r} is neither a bundled model ({bundled_models() or 'none installed'}) "
                f"nor a directory holding {CONFIG_NAME} (as written by MaskGIT.save_pretrained)"
            )
        try:
            config = from_dict(ModelConfig, json.loads((directory / CONFIG_NAME).read_text()))
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise ValueError(f"{directory / CONFIG_NAME} is not a valid maskgit config: {err}") from err
        model = empty_module(lambda: cls.from_config(config))  # every weight is loaded next
        load_weights(model.tokenizer, directory / TOKENIZER_WEIGHTS)
        load_weights(model.transformer, directory / TRANSFORMER_WEIGHTS)
        model.default_dtype = dtype
        return model.to(device).eval()

    # ------------------------------------------------------------------ sampling
    def resolve_labels(self, labels: Labels, batch_size: int | None = None) -> torch.Tensor | None:
        """Class indices or names -> (B,) long tensor on the model's device, range-checked.

        A string is a class name first (so "1999" is the class of that name); it is read as an index only when no
        class has that name. Integers (and tensors) are indices.
        """
        num_classes = self.transformer.config.num_classes
        if labels is None:
            if num_classes > 0:
                raise ValueError(f"this model is class-conditional ({num_classes} classes): pass labels")
            return None
        if num_classes == 0:
            raise ValueError("this model is unconditional: pass labels=None")
        if not torch.is_tensor(labels) and not isinstance(labels, (list, tuple)):
            labels = [labels]  # one index or name; anything else is refused by class_index
        if not torch.is_tensor(labels):
            labels = torch.tensor([class_index(self.class_names, x) for x in labels], dtype=torch.long)
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool or labels.dim() > 1:
            raise ValueError(f"labels must be a 1-D integer tensor of class indices, got {labels.dtype} of shape "
                             f"{tuple(labels.shape)}")
        labels = labels.to(self.device, torch.long).reshape(-1)
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if bad.numel():
            raise ValueError(f"label {int(bad[0])} is out of range: this model has classes 0..{num_classes - 1}")
        if batch_size is not None and labels.numel() not in (1, batch_size):
            raise ValueError(f"got {labels.numel()} labels for a batch of {batch_size}")
        return labels.expand(batch_size) if batch_size is not None else labels


    def fill_tokens(self, tokens: torch.Tensor, labels: torch.Tensor | None, *, start_iter: int = 0,
                    generator: GeneratorArg = None, return_history: bool = False,
                    dtype: str | torch.dtype | None = None, compile: bool = False, sampling_preset: str | None = None,
                    **settings):
        """Decode the `mask_id` positions of (B, N) `tokens`.

        `settings` are `SamplingConfig` fields (steps, schedule, temperature, temperature_end, choice_temperature,
        sampler, guidance_scale, guidance_schedule, guidance_exponent, guidance_start, cheap_passes); unset or None
        ones take the model's defaults, or those of its named `sampling_preset` (e.g. "fast"). `dtype` (None:
        `self.default_dtype`) is the compute dtype (see `maskgit.fastpath`); `compile` runs the network through
        torch.compile (not with cheap passes, whose shapes change every step).
        """
        cfg = self.transformer.config
        if cfg.causal:
            raise ValueError("this is an autoregressive (causal) model: it samples whole images in raster order "
                             "(generate); iterative decoding and editing need a bidirectional MaskGIT model")
        s = self.resolve_sampling(sampling_preset, **settings)
        compute_dtype = resolve_dtype(dtype or self.default_dtype, self.device)
        if s.cheap_passes:
            if compile:
                raise ValueError("cheap_passes change the network's input shapes every step: sample them without "
                                 "compile")
            network = CachedPasses(inference_copy(self.transformer, compute_dtype), s.cheap_passes)
            if self.device.type == "cpu":
                keep_freed_memory()  # as fast_forward does
        else:
            network = fast_forward(self.transformer, compute_dtype, compile=compile)
        logits_fn = guided_logits_fn(network, labels, mask_id=cfg.mask_id, null_label=cfg.null_label,
                                     guidance_scale=s.guidance_scale, guidance_schedule=s.guidance_schedule,
                                     guidance_exponent=s.guidance_exponent, guidance_start=s.guidance_start)
        with torch.inference_mode():
            out = decode(
                logits_fn, tokens, mask_id=cfg.mask_id, steps=s.steps, schedule=s.schedule,
                temperature=s.temperature, temperature_end=s.temperature_end, sampler=s.sampler,
                group=s.cheap_passes + 1, choice_temperature=s.choice_temperature, start_iter=start_iter,
                generator=generator, return_history=return_history,
                unknown_rows_only=head_at_unknown_only(self.device, compile=compile, cheap_passes=s.cheap_passes),
            )
        return tuple(t.clone() for t in out) if return_history else out.clone()  # plain tensors again

    def resolve_sampling(self, sampling_preset: str | None = None, **settings) -> SamplingConfig:
        """The `SamplingConfig` a call samples with: the defaults (or the named preset's), overridden by the
        settings that are not None; unknown names and bad values are refused."""
        base = self.sampling
        if sampling_preset not in (None, "default"):
            presets = {p.name: p.sampling for p in self.sampling_presets}
            if sampling_preset not in presets:
                raise ValueError(f"this model has no sampling preset {sampling_preset!r}; it has "
                                 f"{['default', *presets]}")
            base = presets[sampling_preset]
        known = {f.name for f in dataclasses.fields(SamplingConfig)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise TypeError(f"unknown sampling setting(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(base, **{k: v for k, v in settings.items() if v is not None})

    def sample_autoregressive(self, labels: torch.Tensor | None, num_samples: int | None = None, *,
                              sampler: str = "cached", temperature: float | None = None, top_k: int | None = None,
                              generator: GeneratorArg = None, return_history: bool = False,
                              dtype: str | torch.dtype | None = None, compile: bool = False, **unused):
        """(B, N) tokens from a causal transformer, one per step (`maskgit.baselines.sample_autoregressive`).

        MaskGIT-only settings (steps, schedule, choice_temperature, guidance) are refused if given.
        """
        from .baselines import sample_autoregressive

        given = sorted(k for k, v in unused.items() if v is not None)
        if given:
            raise ValueError(f"{', '.join(given)} only apply to MaskGIT decoding; an autoregressive model samples "
                             f"with temperature and top_k")
        if compile:
            raise ValueError("compile applies to MaskGIT decoding (static shapes); the autoregressive samplers change "
                             "shape every step")
        compute_dtype = resolve_dtype(dtype or self.default_dtype, self.device)

        def network(fn, *args):
            with autocast(self.device, compute_dtype):
                return fn(*args)

        with torch.inference_mode():
            out = sample_autoregressive(
                self.transformer, labels, num_samples=num_samples, sampler=sampler,
                temperature=self.sampling.temperature if temperature is None else temperature, top_k=top_k,
                generator=generator, return_history=return_history, forward=network)
        return tuple(t.clone() for t in out) if return_history else out.clone()

    def sampling_settings(self, **sampling) -> dict:
        """The settings a `generate(**sampling)` call samples with, for records: the defaults overridden by
        `sampling`; for a causal model its own (sampler, temperature, top_k), not MaskGIT's decoding ones."""
        if self.transformer.config.causal:
            return {"sampler": "cached", "temperature": self.sampling.temperature, "top_k": None, **sampling}
        if sampling.get("top_k") is not None:
            raise ValueError("top_k settings only apply to autoregressive (causal) models")
        sampling = {k: v for k, v in sampling.items() if k != "top_k"}
        settings = {k: v for k, v in sampling.items() if k not in ("dtype", "compile", "sampling_preset")}
        extra = {k: v for k, v in sampling.items() if k not in settings}
        return {**vars(self.resolve_sampling(sampling.get("sampling_preset"), **settings)), **extra}

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N) codebook ids (raster order) -> images (B, C, H, W) in [0, 1]."""
        g = self.transformer.config.grid_size
        return self.tokenizer.decode_ids(tokens.view(-1, g, g))

    def decode_history(self, history: torch.Tensor, masked_value: float = 0.5) -> torch.Tensor:
        """(B, T, N) per-step tokens -> (B, T, C, H, W) images; still-unknown tokens' patches are grey."""
        b, t, n = history.shape
        cfg = self.transformer.config
        unknown = history == cfg.mask_id
        images = self.decode_tokens(history.masked_fill(unknown, 0).reshape(b * t, n))
        g, f = cfg.grid_size, self.tokenizer.config.downsample_factor
        patch_mask = unknown.view(b * t, 1, g, g).float()
        patch_mask = torch.nn.functional.interpolate(patch_mask, scale_factor=f, mode="nearest").bool()
        return images.masked_fill(patch_mask, masked_value).view(b, t, *images.shape[1:])

    @torch.no_grad()
    def generate(self, labels: Labels = None, *, num_samples: int | None = None, return_history: bool = False,
                 **sampling) -> torch.Tensor:
        """Sample images.

        Randomness comes from `generator`, in one of two forms:
        - one `torch.Generator` (or None: torch's global one) draws the noise of the whole batch at once, so
          image i depends on the batch size and on its position: sample 0 of a batch of 8 differs from the
          same seed at batch size 1;
        - a list of B generators, one per image: image i draws only from generator i, so it gets the same
          tokens whatever else is in the batch (pixels equal up to float rounding); `maskgit sample` does this:
          image i of --seed s uses `torch.Generator().manual_seed(s * 1_000_003 + i)`.

        >>> g = [torch.Generator().manual_seed(s) for s in (7, 8)]
        >>> pair = pipe.generate([0, 3], generator=g)      # pair[0] matches the single image of
        >>> one = pipe.generate([0], generator=[torch.Generator().manual_seed(7)])

        Args:
            labels: class indices or names, one per image (None for an unconditional model).
            num_samples: batch size when labels is None, or to repeat a single label.
            **sampling: `SamplingConfig` fields (steps, schedule, temperature, temperature_end, sampler,
                choice_temperature, guidance_scale, guidance_schedule, guidance_exponent, guidance_start,
                cheap_passes),
                sampling_preset, generator (see above), dtype, compile (see `fill_tokens`); for a causal
                model temperature, top_k, sampler, generator, dtype (see `sample_autoregressive`).
        Returns:
            (B, C, H, W) float images in [0, 1]; with return_history, also the (B, T, N) tokens
            after each step (mask id where still unknown; a causal model: after each row).
        """
        labels = self.resolve_labels(labels, num_samples)
        batch = labels.numel() if labels is not None else num_samples
        if not batch:
            raise ValueError("nothing to generate: pass labels or num_samples")
        cfg = self.transformer.config
        if cfg.causal:
            out = self.sample_autoregressive(labels, batch, return_history=return_history, **sampling)
        else:
            if sampling.pop("top_k", None) is not None:
                raise ValueError("top_k settings only apply to autoregressive (causal) models")
            tokens = torch.full((batch, cfg.num_tokens), cfg.mask_id, dtype=torch.long, device=self.device)
            out = self.fill_tokens(tokens, labels, return_history=return_history, **sampling)
        if return_history:
            return self.decode_tokens(out[0]), out[1]
        return self.decode_tokens(out)

    # ------------------------------------------------------------------ editing (paper section 4.3)
    def inpaint(self, images: torch.Tensor, mask: torch.Tensor, labels: Labels = None, *, dilate: int = 0,
                blur_radius: int | None = None, **sampling) -> torch.Tensor:
        """Regenerate the pixels where `mask` (B, 1, H, W) is True; the rest is kept from `images`.

        Known tokens stay frozen, and the output is composited with the original through the mask
        blurred by `blur_radius` pixels (default: one token), so far pixels are bit-exact.
        `labels=None` uses the null class (unconditional) when the model has one.
        """
        return editing.edit_region(self, images, mask, labels, dilate=dilate, blur_radius=blur_radius, **sampling)

    def outpaint(self, images: torch.Tensor, pad: tuple[int, int, int, int], labels: Labels = None, *,
                 blur_radius: int = 0, **sampling) -> torch.Tensor:
        """Grow the canvas by pad = (left, top, right, bottom) pixels (multiples of the tokenizer factor)
        and fill the new area; the original area is kept bit-exact (blur_radius 0). Canvases larger
        than the model's grid are decoded in overlapping native-size windows (`overlap`, `order`)."""
        canvas, mask = editing.pad_canvas(images, pad, self.tokenizer.config.downsample_factor)
        return editing.edit_region(self, canvas, mask, labels, blur_radius=blur_radius, **sampling)

    def extrapolate(self, images: torch.Tensor, width: int, labels: Labels = None, **sampling) -> torch.Tensor:
        """Extend images to the right up to `width` pixels (the paper's panoramas), window by window."""
        extra = width - images.shape[-1]
        f = self.tokenizer.config.downsample_factor
        if extra <= 0 or extra % f:
            raise ValueError(f"width {width} must exceed the image width {images.shape[-1]} by a multiple of the "
                             f"tokenizer factor {f} (e.g. {images.shape[-1] + f * max(1, -(-extra // f))})")
        return self.outpaint(images, (0, 0, extra, 0), labels, **sampling)

    def edit(self, images: torch.Tensor, box: tuple[int, int, int, int], labels: Labels, *,
             blur_radius: int | None = None, steps: int = editing.EDIT_STEPS,
             start_iter: int = editing.EDIT_START_ITER, **sampling) -> torch.Tensor:
        """Class-conditional editing: regenerate the pixel box (x0, y0, x1, y1), grown by one token,
        with the target class `labels`; official schedule: 12 steps starting at iteration 2."""
        if labels is None:
            raise ValueError("class-conditional editing needs the target class: pass labels")
        if steps <= start_iter:
            raise ValueError(f"edits start decoding at iteration {start_iter} (the official editing schedule), so "
                             f"steps must exceed it, got steps={steps}; pass start_iter=0 (--start-iter 0) to "
                             f"decode from scratch")
        mask = editing.box_mask(images, box)
        return editing.edit_region(self, images, mask, labels, dilate=1, blur_radius=blur_radius, steps=steps,
                                   start_iter=start_iter, **sampling)
