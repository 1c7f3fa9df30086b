"""MVTM training of the MaskGIT transformer on a frozen tokenizer's codes (paper section 3.2).

Reads top to bottom: encode (and cache) the dataset once, build the model, AdamW and EMA, then
loop: mask tokens with the schedule, cross-entropy on masked positions, warm-up + cosine decay.
Every random draw at step s is seeded from (seed, s, rank), and the data order is a pure function
of (seed, epoch), so a resumed run reproduces the uninterrupted one exactly.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..atomic import write_json_atomic
from ..baselines.objective import next_token_step_loss
from ..config import ModelConfig, TokenizerConfig, TransformerConfig, TransformerTrainingConfig, to_dict
from ..mvtm import apply_mask, drop_labels, mvtm_loss, random_token_mask
from ..outputs import check_output_dir
from ..pipeline import MaskGIT
from ..speed.training_cost import cost_text
from ..transformer import MaskGITTransformer
from .accelerator import training_accelerator
from .checkpoint import load_resumable_state, resume_checkpoint, save_training_state, stop_step
from .ema import EMA
from .lr_schedule import warmup_cosine
from .metrics_log import append_csv, truncate_csv
from .run_config import plan_text
from .token_cache import CacheViews, cached_tokens, module_fingerprint


def cache_views(cfg: TransformerTrainingConfig) -> CacheViews:
    """The views of each image the run trains on (cached as token sequences)."""
    return CacheViews(cfg.hflip, cfg.crop_views, cfg.crop_scale, cfg.crop_ratio, cfg.seed)


def lr_at(step: int, cfg: TransformerTrainingConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.lr * cfg.min_lr_ratio at max_steps."""
    return cfg.lr * warmup_cosine(step, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)


def build_optimizer(model: torch.nn.Module, cfg: TransformerTrainingConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, LayerNorm or the MLM bias)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def mvtm_step_loss(model, tokens, labels, cfg: TransformerTrainingConfig, generator: torch.Generator):
    """One MVTM forward: mask, predict, loss. Returns (loss, masked-token accuracy)."""
    tcfg = cfg.transformer
    mask = random_token_mask(tokens.shape[0], tcfg.num_tokens, cfg.mask_schedule, generator=generator,
                             device=tokens.device)
    if labels is not None:
        labels = drop_labels(labels, cfg.label_dropout, tcfg.null_label, generator=generator)
    logits = model(apply_mask(tokens, mask, tcfg.mask_id), labels)
    loss = mvtm_loss(logits, tokens, mask, label_smoothing=cfg.label_smoothing, unmasked_weight=cfg.unmasked_weight)
    accuracy = (logits.argmax(-1) == tokens)[mask].float().mean()
    return loss, accuracy


def save_sample_grid(pipe: MaskGIT, path: Path, cfg: TransformerTrainingConfig, per_class: int = 8) -> None:
    """One row per class, decoded with the EMA weights and the config's sampling settings."""
    from ..images import save_grid

    num_classes = max(1, pipe.transformer.config.num_classes)
    labels = torch.arange(num_classes).repeat_interleave(per_class) if pipe.transformer.config.num_classes else None
    g = torch.Generator(pipe.device).manual_seed(cfg.seed)
    s = cfg.sampling
    decoding = {} if cfg.transformer.causal else {"steps": s.steps, "schedule": s.schedule,
                                                  "guidance_scale": s.guidance_scale}
    images = pipe.generate(labels, num_samples=None if labels is not None else per_class, generator=g, **decoding)
    save_grid(images, path, nrow=per_class)


def check_model_settings(cfg: TransformerTrainingConfig, transformer: TransformerConfig,
                         tokenizer: TokenizerConfig, class_names: tuple[str, ...]) -> None:
    """Fail before any training step if the tokenizer, transformer, schedules and sampling do not fit together."""
    from ..decoding import guidance_scale_at
    from ..schedules import canonical_schedule

    for name, schedule in (("mask_schedule", cfg.mask_schedule), ("sampling.schedule", cfg.sampling.schedule)):
        try:
            canonical_schedule(schedule)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from err
    try:
        guidance_scale_at(cfg.sampling.guidance_scale, cfg.sampling.guidance_schedule, torch.zeros(1))
    except ValueError as err:
        raise ValueError(f"sampling.guidance_schedule: {err}") from err
    if cfg.label_dropout > 0 and transformer.num_classes and not transformer.null_class:
        raise ValueError(f"label_dropout {cfg.label_dropout} needs a null class to drop labels to: set "
                         f"transformer.null_class to true, or label_dropout to 0")
    if class_names and len(class_names) != transformer.num_classes:
        raise ValueError(f"the dataset has {len(class_names)} classes but transformer.num_classes is "
                         f"{transformer.num_classes}")
    try:
        ModelConfig(tokenizer, transformer, cfg.sampling, class_names)  # what final/config.json will hold
    except ValueError as err:
        raise ValueError(f"the tokenizer does not fit the transformer config: {err}; set transformer.codebook_size "
                         f"and transformer.grid_size to the tokenizer's") from err


def initial_weights(init_from: str | Path, tokenizer: torch.nn.Module,
                    transformer: TransformerConfig) -> tuple[dict[str, torch.Tensor], str]:
    """The transformer weights a run starts from, and their fingerprint (saved with every checkpoint).

    Args:
        init_from: a bundled model name or a `save_pretrained` directory (e.g. an earlier run's final/); its
            transformer is the starting point, as float32.
    Raises:
        ValueError: its tokenizer is not the run's (its codes would mean other things) or its network differs
            from the run's (dropout may differ).
    """
    source = MaskGIT.from_pretrained(init_from)
    if module_fingerprint(source.tokenizer) != module_fingerprint(tokenizer):
        raise ValueError(f"--init-from {init_from}: its tokenizer is not the one this run trains on (--tokenizer); "
                         f"a transformer only fits the codes of the tokenizer it was trained with. Pass that "
                         f"tokenizer (for a bundled model or save_pretrained folder, the folder itself)")
    have = {k: v for k, v in to_dict(source.transformer.config).items() if k != "dropout"}
    want = {k: v for k, v in to_dict(transformer).items() if k != "dropout"}
    if have != want:
        diffs = "; ".join(f"{k}: {have.get(k)!r} there, {want.get(k)!r} here" for k in sorted(want)
                          if have.get(k) != want.get(k))
        raise ValueError(f"--init-from {init_from}: its transformer differs from the config's ({diffs}); set the "
                         f"config's transformer section to the model's, or train from scratch")
    state = {k: v.float() for k, v in source.transformer.state_dict().items()}
    return state, module_fingerprint(source.transformer)


def train_transformer(cfg: TransformerTrainingConfig, *, tokenizer_dir: str | Path, data: str, out: str | Path,
                      data_root: str | None = None, split: str = "trainval", max_steps: int | None = None,
                      progress: bool = True, resize: bool = False, init_from: str | Path | None = None) -> Path:
    """Train (or resume) a MaskGIT transformer; returns the directory of the final `save_pretrained` model.

    Args:
        cfg: the resolved training config (saved beside every checkpoint).
        tokenizer_dir: a trained tokenizer (tokenizer.safetensors + tokenizer.json).
        data: dataset name or folder (see `maskgit.data.build_dataset`).
        split: which part of it to train on (default: train + validation; the test split stays unseen).
        out: run directory; re-running the same command resumes from its latest checkpoint.
        max_steps: stop early at this step (for smoke tests); the schedule still uses cfg.max_steps (to change the
            run length, rescale the config with `maskgit.training.run_config.rescale_length`).
        resize: allow data of another image size than the tokenizer's (resized); without it such data is refused.
        init_from: start from this model's transformer weights (a bundled name or `save_pretrained` directory
            with the same tokenizer and network) instead of a random initialisation; the EMA starts from them too.

    Raises:
        ValueError: max_steps < 1; an `init_from` model that does not fit (see `initial_weights`); data the
            tokenizer does not fit (see `maskgit.data_fit.check_fit`); a transformer config that does not fit the
            tokenizer or dataset; or an `out` holding a run started with other settings (see
            `check_resume`), all before any training step.
    """
    from ..data import EpochBatchSampler, build_dataset, dataset_fingerprint
    from ..data_fit import check_fit, describe_data
    from ..vq import load_tokenizer

    stop = stop_step(cfg.max_steps, max_steps)
    out = check_output_dir(out)  # a file or read-only place in the way fails before any work
    tokenizer = load_tokenizer(tokenizer_dir)
    info = describe_data(data, progress=progress)
    notes = check_fit(info, tokenizer.config.in_channels, tokenizer.config.image_size, resize=resize,
                      what="the tokenizer")
    accelerator = training_accelerator(cfg.mixed_precision)
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    accelerator.print(f"training on {world} process(es), device {device}")
    tokenizer = tokenizer.to(device)
    if info.split_sizes and split == "trainval":  # e.g. ImageNet's val/, on which FID is reported
        notes.append(f"--data {data} comes with its own val/ split; trainval trains on it too (use --split train to "
                     f"keep it unseen)")
    for note in notes:
        accelerator.print(f"note: {note}")
    dataset = build_dataset(data, split=split, root=data_root, image_size=tokenizer.config.image_size,
                            channels=tokenizer.config.in_channels)
    class_names = tuple(getattr(dataset, "classes", ()))
    tcfg = cfg.transformer if cfg.dropout is None else type(cfg.transformer)(**{**to_dict(cfg.transformer),
                                                                                "dropout": cfg.dropout})
    check_model_settings(cfg, tcfg, tokenizer.config, class_names)
    # The codes the run trains on: a resumed run must see the same tokenizer and data.
    identity = {"tokenizer": module_fingerprint(tokenizer), "data": dataset_fingerprint(dataset), "init": None}
    init_state = None  # the starting weights belong to the run's identity: a resume must start from the same
    if init_from is not None:
        init_state, identity["init"] = initial_weights(init_from, tokenizer, tcfg)
    # the newest readable checkpoint (an unreadable one is named and set aside); other settings are refused
    ckpt = resume_checkpoint(out / "checkpoints", cfg, identity=identity, log=accelerator.print)
    # every process encodes its share of the images (DataLoader workers decode them); tokens stay memory-mapped
    tokens, labels = cached_tokens(tokenizer, dataset, out / "token_cache", views=cache_views(cfg), rank=rank,
                                   world=world, num_workers=cfg.num_workers, wait=accelerator.wait_for_everyone,
                                   progress=progress and accelerator.is_main_process)
    accelerator.print(plan_text(cfg, len(tokens), stop))
    accelerator.print(f"note: {cost_text(cfg, len(tokens))}")

    torch.manual_seed(cfg.seed)
    model = MaskGITTransformer(tcfg)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device)
    step_loss = next_token_step_loss if tcfg.causal else mvtm_step_loss  # causal: the autoregressive baseline
    ema = EMA(model, cfg.ema_decay)
    optimizer = build_optimizer(model, cfg)
    step = 0
    if ckpt is not None:
        state = load_resumable_state(ckpt, cfg, modules={"model": model, "ema": ema.shadow},
                                     optimizers={"optimizer": optimizer}, identity=identity, log=accelerator.print)
        step = state["step"]
        accelerator.print(f"resumed from {state['path']} at step {step}")
        if step >= stop:
            accelerator.print(f"the run is already at step {step} (>= {stop}): nothing to train; final/ is written "
                              f"from this checkpoint")
    if accelerator.is_main_process:  # rows past the checkpoint (or of an earlier run) are logged again
        truncate_csv(out / "metrics.csv", step)
    model, optimizer = accelerator.prepare(model, optimizer)
    if accelerator.is_main_process:
        write_json_atomic(out / "train_config.json", to_dict(cfg))

    sampler = EpochBatchSampler(len(tokens), cfg.batch_size, seed=cfg.seed, rank=rank, world=world)
    log_path = out / "metrics.csv"
    bar = tqdm(total=stop, initial=step, disable=not (progress and accelerator.is_main_process), desc="train")
    t0, seen = time.time(), 0
    while step < stop:
        torch.manual_seed(cfg.seed * 1_000_003 + step * world + rank)  # dropout stream for this step
        gen = torch.Generator(device).manual_seed(cfg.seed * 7_919 + step * world + rank)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        for micro in range(cfg.grad_accum_steps):
            idx = torch.tensor(sampler.batch(step * cfg.grad_accum_steps + micro))
            batch_tokens = tokens[idx].to(device, torch.long)  # rows gathered from the memory-mapped cache
            batch_labels = labels[idx].to(device) if tcfg.num_classes else None
            # Gradients are all-reduced on the last micro-batch only.
            sync = micro == cfg.grad_accum_steps - 1
            with (nullcontext() if sync else accelerator.no_sync(model)), accelerator.autocast():
                loss, acc = step_loss(model, batch_tokens, batch_labels, cfg, gen)
                accelerator.backward(loss / cfg.grad_accum_steps)
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip else 0.0
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update(accelerator.unwrap_model(model))
        step += 1
        seen += cfg.batch_size * cfg.grad_accum_steps
        bar.update(1)
        if accelerator.is_main_process and (step % cfg.log_every == 0 or step == stop):
            row = {"step": step, "loss": loss.item(), "masked_acc": acc.item(), "lr": lr_at(step - 1, cfg),
                   "grad_norm": float(grad_norm), "images_per_s": seen / (time.time() - t0)}
            append_csv(log_path, row)
            bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['masked_acc']:.3f}")
        if step % cfg.checkpoint_every == 0 or step == stop:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                save_training_state(out / "checkpoints", step,
                                    modules={"model": accelerator.unwrap_model(model), "ema": ema.shadow},
                                    optimizers={"optimizer": optimizer}, config=to_dict(cfg), extra=identity)
        if accelerator.is_main_process and cfg.sample_every and (step % cfg.sample_every == 0 or step == stop):
            pipe = MaskGIT(tokenizer, ema.shadow, cfg.sampling, class_names)
            save_sample_grid(pipe, out / "samples" / f"step_{step:07d}.png", cfg)
    bar.close()
    final = out / "final"
    if accelerator.is_main_process:
        MaskGIT(tokenizer, ema.shadow, cfg.sampling, class_names).save_pretrained(final)
    accelerator.wait_for_everyone()
    return final
