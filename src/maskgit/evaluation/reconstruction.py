"""Tokenizer reconstruction quality: PSNR, SSIM, codebook usage and perplexity on a held-out split.

Images go through the discrete path (`decode_ids(encode(x))`), exactly what the transformer sees.
SSIM follows Wang et al. (2004): 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, valid region.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..vq.quantizer import code_histogram, perplexity_of


def psnr(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for images in [0, 1]: (B, C, H, W) -> (B,)."""
    mse = (recon.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-x.pow(2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(recon: torch.Tensor, target: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM for images in [0, 1], averaged over channels and valid window positions: (B,)."""
    recon, target = recon.float(), target.float()
    c = recon.shape[1]
    size = min(window_size, *recon.shape[-2:])
    window = _gaussian_window(size, sigma).to(recon.device).expand(c, 1, size, size)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=c)

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_x, mu_y = blur(recon), blur(target)
    var_x = blur(recon * recon) - mu_x.pow(2)
    var_y = blur(target * target) - mu_y.pow(2)
    cov = blur(recon * target) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.pow(2) + mu_y.pow(2) + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1)


@torch.no_grad()
def reconstruction_metrics(tokenizer, dataset: Dataset, batch_size: int = 500, progress: bool = True) -> dict:
    """Encode and decode every image of `dataset`; returns mean PSNR / SSIM, code usage and perplexity."""
    tokenizer.eval()
    device = next(tokenizer.parameters()).device
    k = tokenizer.config.codebook_size
    counts = torch.zeros(k)
    psnrs, ssims = [], []
    start = time.time()
    for images, _ in tqdm(DataLoader(dataset, batch_size=batch_size), desc="reconstruct", disable=not progress):
        images = images.to(device)
        ids = tokenizer.encode(images)
        recon = tokenizer.decode_ids(ids)
        counts += code_histogram(ids, k).cpu()
        psnrs.append(psnr(recon, images).cpu())
        ssims.append(ssim(recon, images).cpu())
    psnrs, ssims = torch.cat(psnrs), torch.cat(ssims)
    return {
        "num_images": len(psnrs), "psnr": psnrs.mean().item(), "psnr_std": psnrs.std().item(),
        "ssim": ssims.mean().item(), "ssim_std": ssims.std().item(),
        "codebook_size": k, "codes_used": int((counts > 0).sum()), "usage": (counts > 0).float().mean().item(),
        "perplexity": perplexity_of(counts).item(), "seconds": time.time() - start,
    }


def save_comparison(originals: torch.Tensor, recon: torch.Tensor, path: str | Path, ncol: int = 8) -> Path:
    """PNG of alternating rows: `ncol` originals, then their reconstructions below them."""
    from ..images import save_grid

    rows = [t for i in range(0, len(originals), ncol) for t in (originals[i:i + ncol], recon[i:i + ncol])]
    return save_grid(torch.cat(rows), path, nrow=ncol)


@torch.no_grad()
def comparison_images(tokenizer, dataset: Dataset, num: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `num` images of `dataset` and their reconstructions through the codes."""
    device = next(tokenizer.parameters()).device
    originals = torch.stack([dataset[i][0] for i in range(min(num, len(dataset)))]).to(device)
    return originals, tokenizer.eval().decode_ids(tokenizer.encode(originals))


def evaluate_tokenizer(tokenizer_dir: str | Path, out: str | Path, *, data: str = "fashion-mnist",
                       split: str = "test", data_root: str | None = None, device: str = "cpu",
                       batch_size: int = 500, num_shown: int = 64, overwrite: bool = False,
                       resize: bool = False, progress: bool = True) -> dict:
    """Metrics of a saved tokenizer on `split`, written to `out` (JSON) with `out` .png beside it (data of another
    image size than the tokenizer's needs `resize`)."""
    from ..atomic import write_json_atomic
    from ..config import to_dict
    from ..data import build_dataset
    from ..data_fit import check_fit, describe_data
    from ..outputs import result_paths
    from ..vq import load_tokenizer

    out, png_path = result_paths(out, overwrite, inputs=[tokenizer_dir])
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    tokenizer = load_tokenizer(tokenizer_dir, device)
    cfg = tokenizer.config
    for note in check_fit(describe_data(data), cfg.in_channels, cfg.image_size, resize=resize, what="the tokenizer"):
        print(f"note: {note}")
    dataset = build_dataset(data, split, cfg.image_size, root=data_root, channels=cfg.in_channels)
    metrics = reconstruction_metrics(tokenizer, dataset, batch_size, progress=progress)
    png = save_comparison(*comparison_images(tokenizer, dataset, num_shown), png_path)
    result = {"tokenizer": str(tokenizer_dir), "data": data, "data_root": data_root, "split": split,
              "resize": resize, "device": str(device), **metrics,
              "comparison_png": png.name, "tokenizer_config": to_dict(cfg)}
    write_json_atomic(out, result)
    return result
