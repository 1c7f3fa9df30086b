"""Evaluation: sample dumps and the field's metrics (FD / FID, IS, improved precision-recall, CAS), tokenizer
reconstruction metrics, and (in their own modules) the judge classifier and generation / editing reports.
Re-exports only (`maskgit.evaluation.sample_dump` is the module of `sample_dump`)."""

from .cas import classification_accuracy_score
from .frechet import feature_statistics, frechet_distance
from .image_sets import load_image_set, save_batch, save_stats
from .inception_score import inception_score
from .metrics import compute_metrics, evaluate_dump
from .precision_recall import precision_recall
from .reconstruction import evaluate_tokenizer, psnr, reconstruction_metrics, save_comparison, ssim

__all__ = ["classification_accuracy_score", "compute_metrics", "evaluate_dump", "evaluate_tokenizer",
           "feature_statistics", "frechet_distance", "inception_score", "load_image_set", "precision_recall", "psnr",
           "reconstruction_metrics", "save_batch", "save_comparison", "save_stats", "ssim"]
