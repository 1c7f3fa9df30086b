"""WebDataset shards: written from a folder (either layout), read back with the folder's images and labels."""

import json

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from maskgit.data import build_dataset, dataset_fingerprint
from maskgit.data_fit import describe_data
from maskgit.shards import ShardDataset, read_index, stream_shards, tar_members, write_shards

pytest.importorskip("webdataset")


def _folder(root, classes=("cats", "dogs"), per_class=7):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = Image.new("RGB", (14 + i % 3, 12), (30 * i, 90 * c, 255 - 30 * i))
            image.save(root / name / f"{i}.{'jpg' if i % 2 else 'png'}")
    return root


def _same_items(a, b):
    assert len(a) == len(b) and a.classes == b.classes
    for i in range(len(a)):
        (x, y), (u, v) = a[i], b[i]
        assert torch.equal(x, u) and y == v, i


def test_shards_of_a_single_folder_hold_its_splits(tmp_path):
    folder = _folder(tmp_path / "folder")
    index = write_shards(folder, tmp_path / "shards", shard_size=3, progress=False)
    assert set(index["splits"]) == {"train", "val", "test"} and index["classes"] == ["cats", "dogs"]
    for split in ("train", "val", "test"):
        _same_items(build_dataset(str(tmp_path / "shards"), split, image_size=8),
                    build_dataset(str(folder), split, image_size=8))
    both = build_dataset(str(tmp_path / "shards"), "trainval", image_size=8)  # train's shards, then val's
    parts = [build_dataset(str(folder), split, image_size=8) for split in ("train", "val")]
    assert both.labels.tolist() == parts[0].labels.tolist() + parts[1].labels.tolist()
    assert torch.equal(both[len(parts[0])][0], parts[1][0][0])
    train = index["splits"]["train"]
    assert [s["count"] for s in train["shards"]] == [3, 3, 3, 3] and train["count"] == 12
    key, members = tar_members(tmp_path / "shards" / "train-000000.tar")[0]
    assert key == "train-00000000" and "cls" in members


def test_shards_of_an_explicit_layout_and_the_webdataset_stream(tmp_path):
    _folder(tmp_path / "imagenet" / "train", per_class=5)
    _folder(tmp_path / "imagenet" / "val", per_class=2)
    write_shards(tmp_path / "imagenet", tmp_path / "shards", shard_size=4, progress=False)
    shards = ShardDataset(tmp_path / "shards", "val", image_size=8)
    _same_items(shards, build_dataset(str(tmp_path / "imagenet"), "val", image_size=8))
    folder = build_dataset(str(tmp_path / "imagenet"), "train", image_size=8)
    streamed = list(stream_shards(tmp_path / "shards", "train", image_size=8))
    assert len(streamed) == len(folder)
    for (x, y), i in zip(streamed, range(len(folder))):
        assert torch.equal(x, folder[i][0]) and y == int(folder.labels[i])
    # DataLoader workers take whole shards; together they yield every sample once
    loader = DataLoader(stream_shards(tmp_path / "shards", "train", image_size=8), batch_size=None, num_workers=2)
    assert sorted(int(y) for _, y in loader) == sorted(folder.labels.tolist())


def test_describe_data_reads_the_index_and_shards_load_in_workers(tmp_path):
    folder = _folder(tmp_path / "folder")
    write_shards(folder, tmp_path / "shards", shard_size=4, progress=False)
    info, direct = describe_data(str(tmp_path / "shards")), describe_data(str(folder))
    assert (info.channels, info.sizes, info.classes, info.num_items) == \
        (direct.channels, direct.sizes, direct.classes, direct.num_items)
    assert info.split_size("trainval") == direct.split_size("trainval")
    dataset = ShardDataset(tmp_path / "shards", "trainval", image_size=8)
    batches = list(DataLoader(dataset, batch_size=4, num_workers=2))
    assert torch.cat([b[1] for b in batches]).tolist() == dataset.labels.tolist()
    assert torch.equal(torch.cat([b[0] for b in batches]), torch.stack([dataset[i][0] for i in range(len(dataset))]))


def test_an_interrupted_write_keeps_finished_shards_and_a_changed_folder_starts_over(tmp_path):
    folder = _folder(tmp_path / "folder")
    out = tmp_path / "shards"
    write_shards(folder, out, shard_size=3, progress=False)
    first = (out / "train-000000.tar").stat().st_mtime_ns
    fingerprint = dataset_fingerprint(ShardDataset(out, "train", 8))
    # as a kill would leave it: the progress file, some shards, no index
    (out / "shards.json").unlink()
    (out / "train-000001.tar").unlink()
    from maskgit.shards import _plan_hash, _source_splits

    (out / "progress.json").write_text(json.dumps({"plan": _plan_hash(_source_splits(folder), 3)}))
    write_shards(folder, out, shard_size=3, progress=False)
    assert (out / "train-000000.tar").stat().st_mtime_ns == first and (out / "train-000001.tar").is_file()
    assert dataset_fingerprint(ShardDataset(out, "train", 8)) != fingerprint  # the rewritten shard is newer
    _same_items(ShardDataset(out, "train", 8), build_dataset(str(folder), "train", image_size=8))
    assert not (out / "progress.json").exists()
    Image.new("RGB", (14, 12)).save(folder / "cats" / "0.png")  # the folder changed: every shard is rewritten
    (out / "progress.json").write_text(json.dumps({"plan": "old"}))
    write_shards(folder, out, shard_size=3, progress=False)
    assert (out / "train-000000.tar").stat().st_mtime_ns != first


def test_a_damaged_index_is_named(tmp_path):
    (tmp_path / "shards.json").write_text("{not json")
    with pytest.raises(ValueError, match="shards.json cannot be read"):
        read_index(tmp_path)


def test_shards_command_writes_once_and_refuses_a_finished_set(tmp_path, capsys):
    from maskgit.cli import main

    source = _folder(tmp_path / "images")
    out = tmp_path / "shards"
    assert main(["shards", "--data", str(source), "--out", str(out), "--shard-size", "4", "--no-progress"]) == 0
    assert "train from them with --data" in capsys.readouterr().out
    before = (out / "shards.json").read_bytes()
    assert main(["shards", "--data", str(source), "--out", str(out)]) == 2  # a finished set is never rewritten
    assert "--overwrite" in capsys.readouterr().err and (out / "shards.json").read_bytes() == before
    assert main(["shards", "--data", str(source), "--out", str(out), "--overwrite", "--no-progress"]) == 0
