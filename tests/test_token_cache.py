"""Token cache at scale: byte-identical for 1 or N processes, resumable after a kill, memory-mapped on load."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from maskgit.data import TensorImageDataset, build_dataset
from maskgit.presets import TOKENIZER_PRESETS
from maskgit.training.token_cache import CacheViews, cached_tokens, encode_chunks, token_cache_key
from maskgit.training.token_store import merge_parts, open_tokens, write_part
from maskgit.vq import VQGAN, save_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    torch.manual_seed(0)
    return VQGAN(TOKENIZER_PRESETS["tiny"]).eval()


@pytest.fixture(scope="module")
def digits():
    return build_dataset("digits", "val")  # 180 images, 8x8


def test_two_processes_write_the_same_bytes_as_one(tokenizer, digits, tmp_path):
    one, _ = cached_tokens(tokenizer, digits, tmp_path / "one", chunk_size=16)
    key = token_cache_key(tokenizer, digits, chunk_size=16)
    parts = tmp_path / "two" / f"tokens-{key}.parts"
    for rank in (1, 0):  # each process its share (chunks r, r + 2, ...), in either order
        encode_chunks(tokenizer, digits, parts, chunk_size=16, rank=rank, world=2, progress=False)
    two, labels = cached_tokens(tokenizer, digits, tmp_path / "two", chunk_size=16)  # only merges
    a, b = (tmp_path / d / f"tokens-{key}.safetensors" for d in ("one", "two"))
    assert a.read_bytes() == b.read_bytes() and not parts.exists()
    assert torch.equal(one, two) and one.shape == (180, 16) and one.dtype == torch.int16
    assert torch.equal(labels, digits.labels)
    with torch.no_grad():
        assert torch.equal(two[:16].long(), tokenizer.encode(torch.stack([digits[i][0] for i in range(16)])).flatten(1))
    stored = load_file(str(a))  # a standard safetensors file
    assert np.array_equal(stored["tokens"], one.numpy()) and np.array_equal(stored["labels"], labels.numpy())


def test_flip_and_crop_views_are_cached_chunk_by_chunk(tokenizer, tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (20, 1, 12, 12), generator=g, dtype=torch.uint8)
    dataset = TensorImageDataset(images, torch.arange(20) % 3)
    resized = TensorImageDataset((torch.nn.functional.interpolate(images.float(), size=8) + 0.5).to(torch.uint8),
                                 dataset.labels)
    views = CacheViews(hflip=True, crop_views=2, crop_scale=(0.3, 1.0), seed=4)
    tokens, labels = cached_tokens(tokenizer, resized, tmp_path, views=views, chunk_size=8)
    assert views.count == 6 and tokens.shape == (120, 16)
    # chunk 0 = images 0..7: centre, centre flipped, crop 1, crop 1 flipped, crop 2, crop 2 flipped
    assert labels[:48].tolist() == resized.labels[:8].tolist() * 6
    centre = torch.stack([resized[i][0] for i in range(8)])
    with torch.no_grad():
        assert torch.equal(tokens[:8].long(), tokenizer.encode(centre).flatten(1))
        assert torch.equal(tokens[8:16].long(), tokenizer.encode(centre.flip(-1)).flatten(1))
    assert not torch.equal(tokens[16:24], tokens[:8])  # a crop view is another image
    again, _ = cached_tokens(tokenizer, resized, tmp_path / "again", views=views, chunk_size=8)
    assert torch.equal(again, tokens)  # crops are drawn from (seed, image, view)
    other, _ = cached_tokens(tokenizer, resized, tmp_path / "other", views=CacheViews(True, 2, (0.3, 1.0), seed=5),
                             chunk_size=8)
    assert not torch.equal(other, tokens)


SLOW_ENCODE = """
import sys, time, torch
from maskgit.data import TensorImageDataset, build_dataset
from maskgit.training.token_cache import cached_tokens
from maskgit.vq import load_tokenizer

if sys.argv[3] == "slow":  # slow image reads, so that the kill lands mid-way
    read = TensorImageDataset.__getitem__
    TensorImageDataset.__getitem__ = lambda self, i: (time.sleep(0.004), read(self, i))[1]
torch.set_num_threads(1)
cached_tokens(load_tokenizer(sys.argv[1]), build_dataset("digits", "trainval"), sys.argv[2], chunk_size=16)
"""


def test_a_killed_encode_resumes_and_gives_the_same_file(tokenizer, tmp_path):
    script = tmp_path / "encode.py"
    script.write_text(SLOW_ENCODE)
    tok_dir = save_tokenizer(tokenizer, tmp_path / "tok")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(out, mode):
        return [sys.executable, str(script), str(tok_dir), str(out), mode]

    assert subprocess.run(run(tmp_path / "reference", "fast"), env=env, capture_output=True).returncode == 0
    reference = next((tmp_path / "reference").glob("tokens-*.safetensors"))
    total = -(-1617 // 16)  # trainval of digits: 1617 images in chunks of 16
    proc = subprocess.Popen(run(tmp_path / "killed", "slow"), env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        parts = list((tmp_path / "killed").glob("tokens-*.parts/chunk-*.safetensors"))
        if len(parts) >= total // 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list((tmp_path / "killed").glob("tokens-*.parts/chunk-*.safetensors")))
    assert total // 2 <= done < total, done  # killed about half way
    assert subprocess.run(run(tmp_path / "killed", "fast"), env=env, capture_output=True).returncode == 0
    resumed = tmp_path / "killed" / reference.name
    assert resumed.read_bytes() == reference.read_bytes()


def test_opening_a_large_cache_maps_it_without_reading_it(tmp_path):
    psutil = pytest.importorskip("psutil")
    parts, rows = tmp_path / "parts", 4000
    parts.mkdir()
    g = np.random.default_rng(0)
    for c in range(50):  # 200k x 256 int16 codes: 100 MB
        write_part(parts, c, g.integers(0, 1024, (rows, 256), dtype=np.int16), np.full(rows, c, np.int64))
    path = merge_parts(parts, tmp_path / "tokens.safetensors", 50)
    process = psutil.Process()
    before = process.memory_info()
    tokens, labels = open_tokens(path)
    opened = process.memory_info().rss - before.rss
    assert tokens.shape == (200_000, 256) and labels[-1] == 49
    assert opened < 20 * 2**20, f"opening grew resident memory by {opened / 2**20:.0f} MiB"
    for _ in range(20):  # training batches page rows in as file-backed (shared, reclaimable) memory, not copies
        batch = torch.from_numpy(tokens)[torch.randint(0, len(tokens), (256,))].long()
    after = process.memory_info()
    private = (after.rss - after.shared) - (before.rss - before.shared)
    assert batch.shape == (256, 256) and private < 30 * 2**20, f"{private / 2**20:.0f} MiB of private memory"


def test_a_missing_part_is_named_before_merging(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    write_part(parts, 0, np.zeros((2, 4), np.int16), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"lack chunk\(s\) \[1\]"):
        merge_parts(parts, tmp_path / "tokens.safetensors", 2)
