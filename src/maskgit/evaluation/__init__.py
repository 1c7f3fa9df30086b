"""Evaluation: tokenizer reconstruction metrics, and (in their own modules) the judge classifier,
Frechet distances and generation / editing reports. Re-exports only."""

from .reconstruction import evaluate_tokenizer, psnr, reconstruction_metrics, save_comparison, ssim

__all__ = ["evaluate_tokenizer", "psnr", "reconstruction_metrics", "save_comparison", "ssim"]
