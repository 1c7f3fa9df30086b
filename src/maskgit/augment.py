"""Random-resized crops (Inception-style, as torchvision's RandomResizedCrop), drawn per image from a seed.

The MaskGIT paper trains with "RandomResizeAndCrop" on ImageNet (section 4.1). Crops are taken from each image at
its own resolution, in DataLoader workers: the sampler hands the dataset (index, seed) pairs (`SeededBatches`), so
the crop of an image at a given training position is the same whatever the number of workers or processes, and
a resumed run sees the same crops. Flips stay batch-level (`maskgit.data.augment`).
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from .config import check_crop_range

DEFAULT_SCALE = (0.08, 1.0)  # torchvision's defaults (the paper gives none)
DEFAULT_RATIO = (3 / 4, 4 / 3)


def crop_box(height: int, width: int, generator: torch.Generator, scale: Sequence[float] = DEFAULT_SCALE,
             ratio: Sequence[float] = DEFAULT_RATIO) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop covering `scale` of the area with aspect ratio in `ratio` (log-uniform);
    after 10 misses, the largest centred crop with the aspect ratio clamped into `ratio` (torchvision's rule)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
        target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[1])
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(u[2] * (height - h + 1)), int(u[3] * (width - w + 1)), h, w
    aspect = width / height
    if aspect < min(ratio):
        w, h = width, round(width / min(ratio))
    elif aspect > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resized_crop(image: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """(C, H, W) -> (C, size, size): the `box` region scaled to size x size (bilinear, antialiased when shrinking)."""
    top, left, h, w = box
    region = image[None, :, top:top + h, left:left + w]
    return F.interpolate(region, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=min(h, w) > size)[0].clamp(0, 1)


def random_resized_crop(image: torch.Tensor, size: int, generator: torch.Generator,
                        scale: Sequence[float] = DEFAULT_SCALE, ratio: Sequence[float] = DEFAULT_RATIO) -> torch.Tensor:
    """(C, H, W) in [0, 1] -> (C, size, size): one random-resized crop (see `crop_box`)."""
    return resized_crop(image, crop_box(*image.shape[-2:], generator, scale, ratio), size)


class RandomCropDataset(Dataset):
    """Items are (index, seed) pairs: seed None gives the dataset's own (centre-cropped) image, else a random-resized
    crop drawn from `seed` of the image at its own size (`dataset.load(index)`; in-memory datasets: the item)."""

    def __init__(self, dataset: Dataset, image_size: int, scale: Sequence[float] = DEFAULT_SCALE,
                 ratio: Sequence[float] = DEFAULT_RATIO):
        check_crop_range(scale, ratio)
        self.dataset, self.image_size, self.scale, self.ratio = dataset, image_size, tuple(scale), tuple(ratio)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int | None]) -> tuple[torch.Tensor, int]:
        index, seed = item
        if seed is None:
            return self.dataset[index]
        load = getattr(self.dataset, "load", self.dataset.__getitem__)
        image, label = load(index)
        g = torch.Generator().manual_seed(seed)
        return random_resized_crop(image, self.image_size, g, self.scale, self.ratio), label


def crop_seed(seed: int, position: int, slot: int) -> int:
    """The crop seed of slot `slot` of global batch `position` (64-bit safe, distinct per pair)."""
    return (seed * 1_000_003 + position) * 65_537 + slot


class SeededBatches(Sampler[list[tuple[int, int]]]):
    """Wraps an `EpochBatchSampler`: batch b's indices paired with `crop_seed(seed, b, slot)`, where slot is the
    index's place in the global batch, so every process draws the crop the single-process run would."""

    def __init__(self, sampler, seed: int):
        self.sampler, self.seed = sampler, seed

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        position = self.sampler.start_batch
        for batch in self.sampler:
            slots = range(self.sampler.rank, self.sampler.batch_size, self.sampler.world)
            yield [(i, crop_seed(self.seed, position, slot)) for i, slot in zip(batch, slots)]
            position += 1
