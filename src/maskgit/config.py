"""Typed configuration for every part of maskgit: plain dataclasses with range checks.

Configs are saved as JSON beside every checkpoint and sample dump (`to_dict` / `from_dict`, in
`typed_config.py`). Special token ids (class tokens, null class, mask id) are derived here once,
following the official MaskGIT vocabulary layout (SPEC section 5). Named presets live in `presets.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .typed_config import MISSING, check_ranges, config_differences, from_dict, to_dict

__all__ = ["MISSING", "config_differences", "from_dict", "to_dict", "TokenizerConfig", "TransformerConfig",
           "SamplingConfig", "SamplingPreset", "ModelConfig", "TransformerTrainingConfig", "DiscriminatorConfig",
           "TokenizerTrainingConfig"]


@dataclass(frozen=True)
class TokenizerConfig:
    """VQGAN tokenizer: convolutional encoder/decoder around a vector quantizer (SPEC 1, 5b)."""

    in_channels: int = 1
    image_size: int = 28  # native training size; any multiple of `downsample_factor` encodes
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)  # one level per entry; len - 1 downsamplings
    num_res_blocks: int = 2
    mid_attention: bool = False  # self-attention at the lowest resolution
    embed_dim: int = 64
    codebook_size: int = 512
    l2_normalize: bool = False  # cosine-similarity lookup (ViT-VQGAN style)
    ema_decay: float = 0.0  # > 0: EMA codebook updates instead of the codebook loss
    commitment_weight: float = 0.25
    norm_groups: int = 32
    official_shortcut: bool = False  # official quirk: 1x1 shortcut applied to convolved features
    downsample: str = "conv"  # "conv": strided 4x4 convolution; "avgpool": 2x2 average pooling (official)
    signed_pixels: bool = True  # the networks see [-1, 1]; False: [0, 1] as the official tokenizer

    def __post_init__(self):
        check_ranges(self, positive=("in_channels", "image_size", "base_channels", "embed_dim", "codebook_size",
                                      "norm_groups"), non_negative=("num_res_blocks", "commitment_weight"),
                      fraction=("ema_decay",))
        if not self.channel_mult:
            raise ValueError("channel_mult needs at least one level")
        if any(m < 1 for m in self.channel_mult):
            raise ValueError(f"channel_mult entries must be positive, got {list(self.channel_mult)}")
        if self.downsample not in ("conv", "avgpool"):
            raise ValueError(f"downsample must be 'conv' or 'avgpool', got {self.downsample!r}")
        if self.image_size % self.downsample_factor:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the downsampling factor "
                             f"{self.downsample_factor}")
        widths = {self.base_channels * m for m in self.channel_mult}
        if any(w % self.norm_groups for w in widths):
            raise ValueError(f"norm_groups {self.norm_groups} must divide every level width {sorted(widths)}")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.downsample_factor


@dataclass(frozen=True)
class TransformerConfig:
    """Bidirectional BERT-style transformer of the official MaskGIT (SPEC section 5).

    Vocabulary layout: [0, K) codebook ids, [K, K + C) class tokens, then the null class
    (only when `null_class` is set, for classifier-free guidance), and the mask id as the
    last row, which is what the official `mask_token_id = -1` resolves to.
    """

    codebook_size: int = 512
    num_classes: int = 10
    grid_size: int = 7  # tokens per side; sequence = (class token) + grid_size**2
    hidden_size: int = 256
    num_layers: int = 6
    num_heads: int = 8
    intermediate_size: int = 1024
    dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    null_class: bool = True  # extra class row for label dropout / guidance
    causal: bool = False  # True: the autoregressive baseline (raster order, next-token objective; baselines/)

    def __post_init__(self):
        check_ranges(self, positive=("codebook_size", "grid_size", "hidden_size", "num_layers", "num_heads",
                                      "intermediate_size", "layer_norm_eps"), non_negative=("num_classes",),
                      fraction=("dropout",))
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.null_class and self.num_classes == 0:
            raise ValueError("null_class needs num_classes > 0 (an unconditional model has no class token)")

    @property
    def num_tokens(self) -> int:
        """Image tokens per sample (N)."""
        return self.grid_size * self.grid_size

    @property
    def seq_len(self) -> int:
        return self.num_tokens + (1 if self.num_classes > 0 else 0)

    @property
    def null_label(self) -> int | None:
        """The label index that means 'no class' (label dropout, guidance)."""
        return self.num_classes if self.null_class else None

    @property
    def vocab_size(self) -> int:
        return self.codebook_size + self.num_classes + int(self.null_class) + 1

    @property
    def mask_id(self) -> int:
        return self.vocab_size - 1

    def class_token(self, label: int) -> int:
        return self.codebook_size + label


@dataclass(frozen=True)
class SamplingConfig:
    """Defaults for iterative parallel decoding (SPEC sections 4 and 4b; see `maskgit.decoding.decode`)."""

    steps: int = 8
    schedule: str = "cosine"
    temperature: float = 1.0
    choice_temperature: float = 4.5
    guidance_scale: float = 0.0
    guidance_schedule: str = "constant"
    sampler: str = "confidence"  # confidence (official), halton or grouped (ReCAP)
    temperature_end: float | None = None  # softmax temperature runs linearly from `temperature` to this
    guidance_exponent: float = 2.75  # p of the power-cosine guidance schedule (TiTok 2.75, MaskBit 3)
    cheap_passes: int = 0  # cached (ReCAP) passes after each full forward pass
    guidance_start: float = 0.0  # guidance (and its unconditional pass) only at steps with (t + 1) / T > this

    def __post_init__(self):
        import math

        from .decoding import GUIDANCE_SCHEDULES, SAMPLERS

        for name in ("temperature", "temperature_end", "choice_temperature", "guidance_scale", "guidance_exponent"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}")
        check_ranges(self, positive=("steps", "guidance_exponent"), non_negative=("temperature", "choice_temperature",
                                                                               "cheap_passes"))
        if self.temperature_end is not None:
            check_ranges(self, positive=("temperature_end",))
        if not (isinstance(self.guidance_start, (int, float)) and 0 <= self.guidance_start < 1):
            raise ValueError(f"guidance_start must be a number in [0, 1), got {self.guidance_start!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {self.sampler!r}")
        if self.guidance_schedule not in GUIDANCE_SCHEDULES:
            raise ValueError(f"guidance_schedule must be one of {list(GUIDANCE_SCHEDULES)}, got "
                             f"{self.guidance_schedule!r}")


@dataclass(frozen=True)
class SamplingPreset:
    """A named sampling setting a model ships besides its defaults (`--sampling NAME`), e.g. `fast`."""

    name: str
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


@dataclass(frozen=True)
class ModelConfig:
    """Everything `MaskGIT.save_pretrained` writes to `config.json`."""

    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    class_names: tuple[str, ...] = ()
    sampling_presets: tuple[SamplingPreset, ...] = ()

    def __post_init__(self):
        if self.tokenizer.codebook_size != self.transformer.codebook_size:
            raise ValueError(
                f"tokenizer has {self.tokenizer.codebook_size} codes but the transformer expects "
                f"{self.transformer.codebook_size}"
            )
        if self.tokenizer.grid_size != self.transformer.grid_size:
            raise ValueError(
                f"tokenizer makes a {self.tokenizer.grid_size}x{self.tokenizer.grid_size} grid but the "
                f"transformer expects {self.transformer.grid_size}x{self.transformer.grid_size}"
            )
        if self.class_names and len(self.class_names) != self.transformer.num_classes:
            raise ValueError(
                f"{len(self.class_names)} class names for {self.transformer.num_classes} classes"
            )


@dataclass(frozen=True)
class TransformerTrainingConfig:
    """MVTM training of the transformer (SPEC section 3).

    The optimiser defaults follow the official ImageNet recipe (batch 256, lr 1e-4, AdamW (0.9, 0.96), weight
    decay 0.045, 5000 warm-up steps, label smoothing 0.1, EMA); the default network is the `TransformerConfig`
    default, and `max_steps` must be set for the data (the official run is 300 ImageNet epochs).
    """

    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # for the periodic sample grids
    batch_size: int = 256  # the total over all processes (each of N takes batch_size / N), per micro-batch
    grad_accum_steps: int = 1
    max_steps: int = 100_000
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.96)
    weight_decay: float = 0.045
    warmup_steps: int = 5000
    min_lr_ratio: float = 0.0  # cosine decay to lr * min_lr_ratio
    grad_clip: float = 1.0
    dropout: float | None = None  # None: keep transformer.dropout
    label_smoothing: float = 0.1
    label_dropout: float = 0.1  # null-class probability, enables classifier-free guidance
    mask_schedule: str = "cosine"
    unmasked_weight: float = 0.0  # 0 = loss on masked tokens only (official)
    ema_decay: float = 0.999
    hflip: bool = False  # horizontal flip augmentation (tokens of both views are cached)
    crop_views: int = 0  # random-resized crops cached per image besides the centre crop (see token_cache.CacheViews)
    crop_scale: tuple[float, float] = (0.08, 1.0)  # area fraction of a crop view (torchvision's default)
    crop_ratio: tuple[float, float] = (0.75, 1.3333333333333333)  # aspect ratio of a crop view
    mixed_precision: str = "no"  # "no", "bf16", "fp16" (Accelerate) or "auto" (bf16 where it is fast; precision.py)
    seed: int = 0
    log_every: int = 50
    sample_every: int = 1000  # 0 = no sample grids
    checkpoint_every: int = 500
    num_workers: int = 0

    def __post_init__(self):
        check_ranges(self, positive=("batch_size", "grad_accum_steps", "max_steps", "lr", "log_every",
                                      "checkpoint_every"),
                      non_negative=("weight_decay", "warmup_steps", "grad_clip", "unmasked_weight", "sample_every",
                                    "num_workers", "crop_views"),
                      fraction=("min_lr_ratio", "label_smoothing", "label_dropout", "ema_decay", "betas[0]",
                                "betas[1]"))
        if self.dropout is not None and not 0 <= self.dropout <= 1:
            raise ValueError(f"dropout must be in [0, 1] or null, got {self.dropout!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16", "auto"):
            raise ValueError(f"mixed_precision must be one of ('no', 'bf16', 'fp16', 'auto'), got "
                             f"{self.mixed_precision!r}")
        check_crop_range(self.crop_scale, self.crop_ratio)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Image discriminator for the VQGAN's adversarial loss: PatchGAN (Isola et al.) or StyleGAN-style."""

    kind: str = "patchgan"  # "patchgan" or "stylegan" (the official tokenizer's choice)
    in_channels: int = 1
    base_channels: int = 64
    num_layers: int = 3  # patchgan: strided conv layers; stylegan: residual downsampling blocks
    image_size: int = 28  # stylegan: input size, fixes the final dense layer

    def __post_init__(self):
        if self.kind not in ("patchgan", "stylegan"):
            raise ValueError(f"discriminator kind must be 'patchgan' or 'stylegan', got {self.kind!r}")
        check_ranges(self, positive=("in_channels", "base_channels", "num_layers", "image_size"))


@dataclass(frozen=True)
class TokenizerTrainingConfig:
    """VQGAN training (SPEC 5b); loss weights default to off except reconstruction and the quantizer's own.

    The official ImageNet tokenizer settings are: perceptual_weight 0.1, adversarial_weight 0.1 with a
    StyleGAN discriminator and non-saturating losses, r1_weight 10, entropy_weight 0.1.
    """

    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    batch_size: int = 64  # the total over all processes (each of N takes batch_size / N), per micro-batch
    grad_accum_steps: int = 1
    max_steps: int = 10_000
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 200
    min_lr_ratio: float = 0.0  # cosine decay to lr * min_lr_ratio at max_steps
    grad_clip: float = 1.0  # 0 = off
    # reconstruction and perceptual losses
    l1_weight: float = 0.5
    l2_weight: float = 1.0
    perceptual_weight: float = 0.0
    perceptual_weights_path: str = ""  # local VGG16 weights (torchvision layout); never downloaded
    # adversarial loss
    adversarial_weight: float = 0.0  # generator loss weight (0 = no discriminator)
    adaptive_weight: bool = True  # scale by |grad rec| / |grad adv| at the last layer (VQGAN paper)
    disc_start_step: int = 2000
    disc_lr: float = 1e-4
    disc_betas: tuple[float, float] = (0.5, 0.9)
    disc_loss: str = "hinge"  # "hinge" or "non-saturating"
    gen_loss: str = "hinge"  # "hinge" or "non-saturating"
    r1_weight: float = 0.0  # R1 gradient penalty on real images (official: 10)
    r1_every: int = 1  # lazy R1: apply every k discriminator steps (scaled by k)
    lecam_weight: float = 0.0  # LeCAM regularisation (Tseng et al. 2021)
    lecam_decay: float = 0.999
    # codebook
    entropy_weight: float = 0.0  # official: 0.1
    entropy_temperature: float = 0.01
    entropy_loss_type: str = "softmax"  # "softmax" or "argmax"
    codebook_init: str = "kmeans"  # "kmeans", "sample" or "none" (random)
    init_batches: int = 20  # batches of encoder outputs the codebook is initialised from (at most one epoch)
    kmeans_iters: int = 10
    restart_dead_codes: bool = True
    dead_code_threshold: float = 0.03  # restart codes picked fewer times per batch on average
    restart_every: int = 50
    restart_until: float = 0.8  # fraction of max_steps after which codes stay put
    usage_decay: float = 0.99
    # what is trained: "all", or "decoder" to fine-tune a trained tokenizer's decoder (train-tokenizer --init-from)
    # with its encoder and codebook frozen, so its codes, and any transformer trained on them, stay valid
    trainable: str = "all"
    # data and bookkeeping
    hflip: bool = False
    crop_pad: int = 0  # random crops of reflect-padded images (translations by up to crop_pad pixels)
    # random-resized crops of each image at its own size (the paper's RandomResizeAndCrop; maskgit.augment)
    random_resized_crop: bool = False
    crop_scale: tuple[float, float] = (0.08, 1.0)  # area fraction of a crop (torchvision's default)
    crop_ratio: tuple[float, float] = (0.75, 1.3333333333333333)  # aspect ratio of a crop
    mixed_precision: str = "no"  # "no", "bf16" (Accelerate) or "auto" (bf16 where it is fast; precision.py)
    num_threads: int = 0  # torch CPU threads (0 = torch's default)
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    num_workers: int = 0

    def __post_init__(self):
        choices = {"disc_loss": ("hinge", "non-saturating"), "gen_loss": ("hinge", "non-saturating"),
                   "entropy_loss_type": ("softmax", "argmax"), "codebook_init": ("kmeans", "sample", "none"),
                   "mixed_precision": ("no", "bf16", "auto"), "trainable": ("all", "decoder")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        check_ranges(self, positive=("batch_size", "grad_accum_steps", "max_steps", "lr", "disc_lr",
                                      "entropy_temperature", "r1_every", "restart_every", "log_every",
                                      "checkpoint_every"),
                      non_negative=("weight_decay", "warmup_steps", "grad_clip", "l1_weight", "l2_weight",
                                    "perceptual_weight", "adversarial_weight", "disc_start_step", "r1_weight",
                                    "lecam_weight", "entropy_weight", "init_batches", "kmeans_iters",
                                    "dead_code_threshold", "crop_pad", "num_threads", "sample_every",
                                    "keep_checkpoints", "num_workers"),
                      fraction=("min_lr_ratio", "lecam_decay", "restart_until", "usage_decay", "betas[0]",
                                "betas[1]", "disc_betas[0]", "disc_betas[1]"))
        if self.codebook_init != "none" and self.init_batches < 1:
            raise ValueError(f"codebook_init {self.codebook_init!r} needs init_batches >= 1, got {self.init_batches}")
        if self.trainable == "decoder" and self.restart_dead_codes:
            raise ValueError("trainable 'decoder' keeps the codebook fixed: set restart_dead_codes to false")
        check_crop_range(self.crop_scale, self.crop_ratio)


def check_crop_range(scale: tuple[float, float], ratio: tuple[float, float]) -> None:
    """Random-resized-crop ranges: 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1]."""
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {list(scale)}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"crop_ratio must satisfy 0 < min <= max, got {list(ratio)}")

