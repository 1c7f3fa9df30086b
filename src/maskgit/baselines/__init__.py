"""Baselines the paper compares MaskGIT with: the autoregressive (raster-order) transformer."""

from .autoregressive import SAMPLERS, sample_autoregressive
from .objective import next_token_loss, next_token_step_loss

__all__ = ["SAMPLERS", "next_token_loss", "next_token_step_loss", "sample_autoregressive"]
