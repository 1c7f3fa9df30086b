"""Random-resized crops: inside the image, deterministic for a seed, the same for any number of processes."""

import pytest
import torch

from maskgit.augment import RandomCropDataset, SeededBatches, crop_box, random_resized_crop
from maskgit.config import TokenizerTrainingConfig
from maskgit.data import EpochBatchSampler, TensorImageDataset


@pytest.mark.parametrize("shape", [(64, 48), (30, 200), (200, 30), (8, 8)])
def test_crop_boxes_lie_inside_the_image_and_respect_the_ranges(shape):
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, h, w = crop_box(*shape, g, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
        assert 0 <= top and 0 <= left and top + h <= shape[0] and left + w <= shape[1] and h > 0 and w > 0


def test_a_seed_gives_the_same_crop_and_another_seed_another():
    image = torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(1))
    crop = random_resized_crop(image, 16, torch.Generator().manual_seed(7))
    assert crop.shape == (3, 16, 16) and 0 <= crop.min() and crop.max() <= 1
    assert torch.equal(crop, random_resized_crop(image, 16, torch.Generator().manual_seed(7)))
    assert not torch.equal(crop, random_resized_crop(image, 16, torch.Generator().manual_seed(8)))
    full = random_resized_crop(image, 16, torch.Generator().manual_seed(7), scale=(1.0, 1.0), ratio=(56 / 40,) * 2)
    assert full.shape == (3, 16, 16)  # the whole image, squeezed


def test_crops_of_a_global_batch_do_not_depend_on_the_number_of_processes():
    images = torch.randint(0, 256, (10, 3, 20, 20), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    dataset = RandomCropDataset(TensorImageDataset(images, torch.arange(10)), 8, scale=(0.2, 0.6))
    one = next(iter(SeededBatches(EpochBatchSampler(10, 4, seed=3, start_batch=2), seed=3)))
    shards = [next(iter(SeededBatches(EpochBatchSampler(10, 4, seed=3, start_batch=2, rank=r, world=2), seed=3)))
              for r in range(2)]
    assert sorted(one) == sorted(shards[0] + shards[1])
    crops = {item: dataset[item][0] for item in one}
    for item in shards[0] + shards[1]:
        assert torch.equal(dataset[item][0], crops[item])
    centre, _ = dataset[(0, None)]
    assert torch.equal(centre, images[0].float() / 255)  # no seed: the dataset's own image


def test_crops_are_off_by_default_and_their_ranges_are_checked():
    assert TokenizerTrainingConfig().random_resized_crop is False
    with pytest.raises(ValueError, match="crop_scale"):
        TokenizerTrainingConfig(crop_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="crop_ratio"):
        TokenizerTrainingConfig(crop_ratio=(0.0, 1.0))


def test_tokenizer_batches_with_crops_are_the_same_with_workers(tmp_path):
    from maskgit.training.tokenizer import Batches

    images = torch.randint(0, 256, (12, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    dataset = TensorImageDataset(images, torch.zeros(12, dtype=torch.long))
    cfg = TokenizerTrainingConfig(batch_size=4, random_resized_crop=True, hflip=True, seed=5)
    plain = Batches(dataset, cfg, 0, 0, 1, "cpu")
    first = [plain.next() for _ in range(3)]
    workers = Batches(dataset, TokenizerTrainingConfig(**{**cfg.__dict__, "num_workers": 2}), 1, 0, 1, "cpu")
    assert torch.equal(workers.next(), first[1])  # a resumed stream (start at batch 1) in 2 workers
    assert first[0].shape == (4, 1, 28, 28)  # the tokenizer's size (default config: 28)
