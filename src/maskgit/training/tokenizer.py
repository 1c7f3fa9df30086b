"""VQGAN tokenizer training on Hugging Face Accelerate (one process, or many with `accelerate launch`).

Reads top to bottom: data, model, optional discriminator / perceptual network, codebook initialised
from encoder outputs (k-means), then loop: reconstruction + quantizer (+ entropy, perceptual, adaptive
adversarial) losses, discriminator step (+ R1, LeCAM), dead-code restarts, logs, grids, checkpoints.
Gradients are averaged across processes by hand (the R1 penalty needs double backward, which DDP
lacks); the data order and every random draw are functions of (seed, step, rank), so resuming is exact.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..atomic import write_json_atomic
from ..augment import RandomCropDataset, SeededBatches
from ..config import TokenizerConfig, TokenizerTrainingConfig, to_dict
from ..data import EpochBatchSampler, augment, build_dataset, dataset_fingerprint
from ..data_fit import check_fit, describe_data
from ..evaluation.reconstruction import save_comparison
from ..outputs import check_output_dir
from ..speed.training_cost import cost_text
from ..vq import VQGAN, CodeUsage, load_tokenizer, save_tokenizer
from ..vq import losses as L
from ..vq.discriminator import build_discriminator
from .accelerator import training_accelerator
from .checkpoint import load_resumable_state, resume_checkpoint, save_training_state, stop_step
from .lr_schedule import warmup_cosine
from .metrics_log import append_csv, truncate_csv
from .run_config import plan_text
from .token_cache import module_fingerprint


def lr_factor(step: int, cfg: TokenizerTrainingConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio at max_steps."""
    return warmup_cosine(step, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)


def average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    """All-reduce (mean) the gradients of `params` in one flat buffer."""
    grads = [p.grad for p in params if p.grad is not None]
    if world == 1 or not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


class Batches:
    """Endless, resumable stream of (augmented) training batches for one process."""

    def __init__(self, dataset, cfg: TokenizerTrainingConfig, start_batch: int, rank: int, world: int, device):
        self.sampler = EpochBatchSampler(len(dataset), cfg.batch_size, seed=cfg.seed, start_batch=start_batch,
                                         rank=rank, world=world)
        batches = self.sampler
        if cfg.random_resized_crop:  # crops drawn in the workers from (seed, batch, slot): see maskgit.augment
            dataset = RandomCropDataset(dataset, cfg.tokenizer.image_size, cfg.crop_scale, cfg.crop_ratio)
            batches = SeededBatches(self.sampler, cfg.seed)
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=cfg.num_workers)
        self.iterator, self.cfg, self.rank, self.device = iter(loader), cfg, rank, device
        self.position = start_batch

    def next(self) -> torch.Tensor:
        images, _ = next(self.iterator)
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.position * 1009 + self.rank)
        self.position += 1
        return augment(images, g, hflip=self.cfg.hflip, crop_pad=self.cfg.crop_pad).to(self.device)


def generator_loss_terms(model, disc, perceptual, images, cfg: TokenizerTrainingConfig, use_gan: bool):
    """Forward the tokenizer and return (total loss, dict of logged terms, quantizer output, reconstruction)."""
    recon, q = model(images)
    rec = L.reconstruction_loss(recon, images, cfg.l1_weight, cfg.l2_weight)
    if perceptual is not None:
        rec = rec + cfg.perceptual_weight * perceptual(recon.float(), images.float())
    total = rec + q.loss
    terms = {"rec": rec.detach(), "commit": q.commitment_loss.detach(), "codebook": q.codebook_loss.detach()}
    if cfg.entropy_weight > 0:
        ent = L.entropy_loss(q.affinity, cfg.entropy_temperature, cfg.entropy_loss_type)
        total = total + cfg.entropy_weight * ent
        terms["entropy"] = ent.detach()
    if use_gan:
        g_loss = L.generator_loss(disc(recon), cfg.gen_loss)
        weight = L.adaptive_weight(rec, g_loss, model.last_layer) if cfg.adaptive_weight else torch.ones(())
        total = total + cfg.adversarial_weight * weight * g_loss
        terms.update(g_loss=g_loss.detach(), adaptive_weight=weight)
    return total, terms, q, recon


def discriminator_loss_terms(disc, images, recon, cfg: TokenizerTrainingConfig, lecam, d_step: int):
    """Discriminator loss on real `images` and detached `recon`, with R1 and LeCAM when enabled."""
    real = images.detach().requires_grad_(cfg.r1_weight > 0 and d_step % cfg.r1_every == 0)
    real_logits, fake_logits = disc(real), disc(recon.detach())
    loss = L.discriminator_loss(real_logits, fake_logits, cfg.disc_loss)
    terms = {"d_loss": loss.detach(), "d_real": real_logits.detach().float().mean(),
             "d_fake": fake_logits.detach().float().mean()}
    if real.requires_grad:
        r1 = L.r1_penalty(real_logits, real)
        loss = loss + cfg.r1_weight * cfg.r1_every * 0.5 * r1
        terms["r1"] = r1.detach()
    if lecam is not None:
        loss = loss + cfg.lecam_weight * L.lecam_loss(real_logits, fake_logits, lecam)
        lecam.update(real_logits, fake_logits)
    return loss, terms


@torch.no_grad()
def initialise_codebook(model: VQGAN, batches: Batches, cfg: TokenizerTrainingConfig, accelerator,
                        num_images: int) -> None:
    """K-means (or sampled) codebook from the encoder outputs of the first `init_batches` batches (at most one
    pass over the `num_images` training images), gathered from every process so all compute the same codebook."""
    latents = []
    for _ in range(min(cfg.init_batches, -(-num_images // cfg.batch_size))):
        z = model.encode_latents(batches.next()).float()
        latents.append(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]))
    vectors = accelerator.gather(torch.cat(latents))
    g = torch.Generator(vectors.device).manual_seed(cfg.seed)
    model.quantizer.init_codebook(vectors, cfg.codebook_init, cfg.kmeans_iters, generator=g)


def initial_tokenizer(init_from: str | Path, config: TokenizerConfig) -> tuple[dict[str, torch.Tensor], str]:
    """The weights a run starts from and their fingerprint (saved with every checkpoint).

    Args:
        init_from: a tokenizer directory (train-tokenizer's final/, a save_pretrained folder) or a bundled
            model name; its weights are the starting point, as float32.
    Raises:
        FileNotFoundError: `init_from` is neither.
        ValueError: its network differs from the config's.
    """
    from ..bundled import bundled_or_path

    source = load_tokenizer(bundled_or_path(init_from, "tokenizer.json"))
    have, want = to_dict(source.config), to_dict(config)
    if have != want:
        diffs = "; ".join(f"{k}: {have.get(k)!r} there, {want.get(k)!r} here" for k in sorted(want)
                          if have.get(k) != want.get(k))
        raise ValueError(f"--init-from {init_from}: its tokenizer differs from the config's ({diffs}); set the "
                         f"config's tokenizer section to its tokenizer.json")
    return {k: v.float() for k, v in source.state_dict().items()}, module_fingerprint(source)


def set_train_mode(model: VQGAN, cfg: TokenizerTrainingConfig) -> None:
    """Training mode for what is trained; a frozen encoder and quantizer stay in eval mode (no EMA updates)."""
    model.train()
    if cfg.trainable == "decoder":
        model.encoder.eval()
        model.quantizer.eval()


def train_tokenizer(cfg: TokenizerTrainingConfig, *, data: str, out: str | Path, data_root: str | None = None,
                    max_steps: int | None = None, progress: bool = True, resize: bool = False,
                    init_from: str | Path | None = None) -> Path:
    """Train (or resume) a VQGAN tokenizer; returns `out/final` (tokenizer.safetensors + tokenizer.json).

    Args:
        cfg: the resolved training config (saved beside every checkpoint).
        data: 'fashion-mnist', 'digits' or an image folder (see `maskgit.data.build_dataset`).
        out: run directory; re-running the same command resumes from its latest checkpoint.
        max_steps: stop early at this step (smoke tests); the LR schedule still uses cfg.max_steps (to change the
            run length, rescale the config with `maskgit.training.run_config.rescale_length`).
        resize: allow data of another image size than the tokenizer's (resized); without it such data is refused.
        init_from: start from this trained tokenizer (see `initial_tokenizer`) instead of random weights and a
            k-means codebook; required by `cfg.trainable == "decoder"` (decoder fine-tuning: the codes stay the
            same, so a transformer trained on them fits the result).

    Raises:
        ValueError: max_steps < 1, trainable 'decoder' without `init_from`, an `init_from` tokenizer of another
            network, data the tokenizer does not fit (colour for 1 channel, another size without
            `resize`; see `maskgit.data_fit.check_fit`), or an `out` holding a run started with other settings or
            data (see `check_resume`), before any training step.
    """
    stop = stop_step(cfg.max_steps, max_steps)
    if cfg.trainable == "decoder" and init_from is None:
        raise ValueError("trainable 'decoder' fine-tunes a trained tokenizer's decoder: pass --init-from (its "
                         "directory, or a bundled model name)")
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    out = check_output_dir(out)  # a file or read-only place in the way fails before any work
    tcfg = cfg.tokenizer
    info = describe_data(data, progress=progress)
    notes = check_fit(info, tcfg.in_channels, tcfg.image_size, resize=resize, what="the tokenizer")
    accelerator = training_accelerator(cfg.mixed_precision)
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    accelerator.print(f"training on {world} process(es), device {device}")
    for note in notes:
        accelerator.print(f"note: {note}")
    dataset = build_dataset(data, "train", tcfg.image_size, root=data_root, channels=tcfg.in_channels)
    val = build_dataset(data, "val", tcfg.image_size, root=data_root, channels=tcfg.in_channels)
    val_images = torch.stack([val[i][0] for i in range(min(32, len(val)))]).to(device)
    identity = {"data": dataset_fingerprint(dataset)}  # a resumed run must see the same training images
    init_state = None  # and start from the same weights
    if init_from is not None:
        init_state, identity["init"] = initial_tokenizer(init_from, tcfg)
    accelerator.print(plan_text(cfg, len(dataset), stop))
    accelerator.print(f"note: {cost_text(cfg, len(dataset))}")
    # the newest readable checkpoint (an unreadable one is named and set aside); other settings are refused
    ckpt = resume_checkpoint(out / "checkpoints", cfg, identity=identity, log=accelerator.print)

    torch.manual_seed(cfg.seed)
    model = VQGAN(tcfg)
    if init_state is not None:
        model.load_state_dict(init_state)
    if cfg.trainable == "decoder":  # the codes stay those of `init_from`
        model.encoder.requires_grad_(False)
        model.quantizer.requires_grad_(False)
    model = model.to(device)
    usage = CodeUsage(tcfg.codebook_size, cfg.usage_decay).to(device)
    modules = {"tokenizer": model, "usage": usage}
    opt_g = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=cfg.betas,
                             weight_decay=cfg.weight_decay)
    optimizers = {"tokenizer": opt_g}
    disc = perceptual = lecam = None
    if cfg.adversarial_weight > 0:
        disc = build_discriminator(cfg.discriminator).to(device)
        optimizers["discriminator"] = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr, betas=cfg.disc_betas)
        modules["discriminator"] = disc
        if cfg.lecam_weight > 0:
            lecam = modules["lecam"] = L.LeCamEMA(cfg.lecam_decay).to(device)
    if cfg.perceptual_weight > 0:
        if not cfg.perceptual_weights_path:
            raise ValueError("perceptual_weight > 0 needs perceptual_weights_path (local VGG16 weights)")
        perceptual = L.PerceptualLoss()
        L.load_perceptual_weights(perceptual, cfg.perceptual_weights_path)
        perceptual.to(device)

    step = 0
    if ckpt is not None:
        state = load_resumable_state(ckpt, cfg, modules=modules, optimizers=optimizers, identity=identity,
                                     log=accelerator.print)
        step = state["step"]
        accelerator.print(f"resumed from {state['path']} at step {step}")
        if step >= stop:
            accelerator.print(f"the run is already at step {step} (>= {stop}): nothing to train; final/ is written "
                              f"from this checkpoint")
    batches = Batches(dataset, cfg, step * cfg.grad_accum_steps, rank, world, device)
    if step == 0 and cfg.codebook_init != "none" and init_state is None:
        initialise_codebook(model, batches, cfg, accelerator, len(dataset))
        batches = Batches(dataset, cfg, 0, rank, world, device)  # training starts from the first batch again
    if accelerator.is_main_process:
        write_json_atomic(out / "train_config.json", to_dict(cfg))
        truncate_csv(out / "metrics.csv", step)

    g_params = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(total=stop, initial=step, disable=not (progress and accelerator.is_main_process), desc="tokenizer")
    t0, seen = time.time(), 0
    while step < stop:
        for opt in optimizers.values():
            base = cfg.lr if opt is opt_g else cfg.disc_lr
            for group in opt.param_groups:
                group["lr"] = base * lr_factor(step, cfg)
        use_gan = disc is not None and step >= cfg.disc_start_step
        set_train_mode(model, cfg)
        micro_batches, terms = [], {}
        for _ in range(cfg.grad_accum_steps):
            images = batches.next()
            if disc is not None:
                disc.requires_grad_(False)  # the generator step leaves the discriminator's grads alone
            with accelerator.autocast():
                loss, terms, q, recon = generator_loss_terms(model, disc, perceptual, images, cfg, use_gan)
            (loss / cfg.grad_accum_steps).backward()
            usage.update(q.ids)
            micro_batches.append((images, recon.detach()))
        average_gradients(g_params, world)
        grad_norm = torch.nn.utils.clip_grad_norm_(g_params, cfg.grad_clip) if cfg.grad_clip else torch.zeros(())
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)

        if use_gan:
            disc.requires_grad_(True)
            opt_d = optimizers["discriminator"]
            for images, recon in micro_batches:
                with accelerator.autocast():
                    d_loss, d_terms = discriminator_loss_terms(disc, images, recon, cfg, lecam, step)
                (d_loss / cfg.grad_accum_steps).backward()
            terms.update(d_terms)
            average_gradients(list(disc.parameters()), world)
            opt_d.step()
            opt_d.zero_grad(set_to_none=True)

        if cfg.restart_dead_codes and step % cfg.restart_every == 0 and step < cfg.restart_until * cfg.max_steps:
            vectors = accelerator.gather(q.latents)  # the same vectors and generator on every process
            g = torch.Generator(vectors.device).manual_seed(cfg.seed * 7919 + step)
            model.quantizer.restart_codes(usage.dead_codes(cfg.dead_code_threshold), vectors, g)
        step += 1
        seen += cfg.batch_size * cfg.grad_accum_steps
        bar.update(1)

        if accelerator.is_main_process and (step % cfg.log_every == 0 or step == stop):
            row = {"step": step, "loss": loss.item(), **{k: float(v) for k, v in terms.items()},
                   "usage": usage.usage(), "perplexity": usage.perplexity(),
                   "dead_codes": int(usage.dead_codes(cfg.dead_code_threshold).sum()),
                   "lr": cfg.lr * lr_factor(step - 1, cfg), "grad_norm": float(grad_norm),
                   "images_per_s": seen / (time.time() - t0)}
            append_csv(out / "metrics.csv", row)
            bar.set_postfix(rec=f"{row['rec']:.4f}", usage=f"{row['usage']:.2f}")
        if accelerator.is_main_process and cfg.sample_every and (step % cfg.sample_every == 0 or step == stop):
            save_reconstruction_grid(model, val_images, out / "samples" / f"step_{step:07d}.png")
        if step % cfg.checkpoint_every == 0 or step == stop:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                save_training_state(out / "checkpoints", step, modules=modules, optimizers=optimizers,
                                    config=to_dict(cfg), data_position=batches.position, keep=cfg.keep_checkpoints,
                                    extra=identity)
    bar.close()
    final = out / "final"
    if accelerator.is_main_process:
        save_tokenizer(model.eval(), final)
    accelerator.wait_for_everyone()
    accelerator.print(f"tokenizer saved to {final}")
    return final


def tokenizer_from_checkpoint(checkpoint: str | Path) -> VQGAN:
    """The tokenizer of a train-tokenizer checkpoint (`out/checkpoints/step_XXXXXXXX`), in eval mode, e.g. to
    score every checkpoint of a run on held-out images and keep the best (`save_tokenizer` writes it out)."""
    from ..config import from_dict
    from ..weights import load_weights
    from .checkpoint import read_checkpoint_meta

    meta = read_checkpoint_meta(checkpoint)
    if not meta.get("config") or "tokenizer" not in meta.get("modules", ()):
        raise ValueError(f"{checkpoint} is not a train-tokenizer checkpoint (no tokenizer module and config)")
    model = VQGAN(from_dict(TokenizerTrainingConfig, meta["config"]).tokenizer)
    load_weights(model, Path(checkpoint) / "tokenizer.safetensors")
    return model.eval()


@torch.no_grad()
def save_reconstruction_grid(model: VQGAN, images: torch.Tensor, path: Path) -> None:
    """Originals above their reconstructions through the codes (eval mode)."""
    was_training = model.training
    recon = model.eval().decode_ids(model.encode(images))
    model.train(was_training)
    save_comparison(images, recon, path)
