"""maskgit: MaskGIT (Chang et al., CVPR 2022) in PyTorch. Re-exports the public API only."""

from .bundled import bundled_models
from .config import ModelConfig, SamplingConfig, TokenizerConfig, TransformerConfig, TransformerTrainingConfig
from .decoding import decode, guided_logits_fn
from .mvtm import drop_labels, mvtm_loss, random_token_mask
from .presets import PRESETS, TOKENIZER_PRESETS, TRANSFORMER_PRESETS
from .schedules import SCHEDULES, mask_ratio
from .transformer import MaskGITTransformer


def __getattr__(name):
    # The facade pulls in the tokenizer; import it lazily so `import maskgit` stays light.
    if name == "MaskGIT":
        from .pipeline import MaskGIT

        return MaskGIT
    raise AttributeError(f"module 'maskgit' has no attribute {name!r}")


__all__ = [
    "MaskGIT", "MaskGITTransformer", "ModelConfig", "PRESETS", "SamplingConfig", "TOKENIZER_PRESETS",
    "TRANSFORMER_PRESETS",
    "TokenizerConfig", "TransformerConfig", "TransformerTrainingConfig", "SCHEDULES", "bundled_models", "decode",
    "drop_labels", "guided_logits_fn", "mask_ratio", "mvtm_loss", "random_token_mask",
]
__version__ = "0.1.0"
