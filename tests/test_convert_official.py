"""Official checkpoint importer: numeric parity with the official Flax code on its own fixtures
(tests/fixtures/official, made by the official modules on random weights), strictness, config inference,
conversion to a model directory and its round trip."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import maskgit.decoding as decoding
from maskgit import MaskGIT
from maskgit.config import TransformerConfig
from maskgit.convert import (
    convert_official,
    load_official_tokenizer,
    load_official_transformer,
    read_flax_msgpack,
    write_flax_msgpack,
)
from maskgit.convert.official import infer_tokenizer_config, infer_transformer_config
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS

FIXTURES = Path(__file__).parent / "fixtures" / "official"
TRANSFORMER = FIXTURES / "transformer_small.msgpack"
TOKENIZER = FIXTURES / "tokenizer_tiny.msgpack"
CODES, MASK = 64, 74  # the small fixture: 64 codes, 10 classes, mask = last row (official -1)
ATOL = 1e-4


@pytest.fixture(scope="module")
def transformer():
    return load_official_transformer(TRANSFORMER, codebook_size=CODES)


@pytest.fixture(scope="module")
def tokenizer():
    return load_official_tokenizer(TOKENIZER, image_size=16)


def nhwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).numpy()


# ------------------------------------------------------------------------------------------- transformer parity
def test_transformer_logits_and_every_layer_match_the_official_outputs(transformer):
    io = np.load(FIXTURES / "transformer_small_io.npz")
    ids = torch.from_numpy(io["ids"]).long()
    assert (ids == -1).any()
    ids[ids == -1] = transformer.config.mask_id  # the official -1 wraps to the last row, our mask id
    assert torch.equal(ids, torch.from_numpy(io["ids_mask_wrapped"]).long())
    outputs = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: outputs.__setitem__(name, out))
             for name, m in transformer.named_modules()]
    with torch.no_grad():
        logits = transformer(ids[:, 1:], ids[:, 0] - CODES)
        # Every position and the whole vocabulary, through our MLM head (the network itself cuts to codes).
        full = transformer.MlmLayer_0(outputs["layers.1"], transformer.Embed_0.word_embeddings.weight,
                                      transformer.config.vocab_size)
    for h in hooks:
        h.remove()
    np.testing.assert_allclose(full.numpy(), io["logits"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(logits.numpy(), io["logits"][:, 1:, :CODES], atol=ATOL, rtol=0)

    ours = {"Embed_0": "Embed_0", "MlmLayer_0/mlm_dense": "MlmLayer_0.mlm_dense", "MlmLayer_0/mlm_ln": "MlmLayer_0.mlm_ln"}
    for i in range(2):
        official, mine = f"TransformerLayer_{i}", f"layers.{i}"
        ours |= {official: mine, f"{official}/Attention_0": f"{mine}.Attention_0",
                 f"{official}/Attention_0/self_attention": f"{mine}.Attention_0.out",
                 f"{official}/Mlp_0": f"{mine}.Mlp_0", f"{official}/Mlp_0/intermediate_output": f"{mine}.Mlp_0.intermediate_output"}
        ours |= {f"{official}/Attention_0/self_attention/{p}": f"{mine}.Attention_0.{p}" for p in ("query", "key", "value")}
    checked = 0
    for key in (k for k in io.files if k.startswith("inter/")):
        path = key.removeprefix("inter/")
        expected = io[key]  # recorded for the second sample, the partly masked one
        np.testing.assert_allclose(outputs[ours[path]][1].reshape(expected.shape).numpy(), expected, atol=ATOL, rtol=0,
                                   err_msg=path)
        checked += 1
    assert checked == 19  # every layer output the official fixture recorded


def test_mask_id_is_the_last_embedding_row_not_row_zero(transformer):
    """Guards the official `mask_token_id = -1` convention: row 0 instead would move logits by ~10."""
    io = np.load(FIXTURES / "transformer_small_io.npz")
    ids = torch.from_numpy(io["ids"]).long()
    with torch.no_grad():
        as_zero = transformer(torch.where(ids[:, 1:] == -1, 0, ids[:, 1:]), ids[:, 0] - CODES)
    assert (as_zero.numpy() - io["logits"][:, 1:, :CODES]).__abs__().max() > 1.0


# ------------------------------------------------------------------------------------------- tokenizer parity
def test_tokenizer_ids_latents_and_pixels_match_the_official_outputs(tokenizer):
    io = np.load(FIXTURES / "tokenizer_tiny_io.npz")
    images = torch.from_numpy(io["images"]).permute(0, 3, 1, 2)
    with torch.no_grad():
        latents = tokenizer.encode_latents(images)
        ids = tokenizer.encode(images)
        quantized = tokenizer.quantizer.lookup(ids)
        decoded = tokenizer.decode_codes(quantized)  # raw decoder output, as the official (no clip)
        from_random = tokenizer.decode_codes(tokenizer.quantizer.lookup(torch.from_numpy(io["ids_random"]).long()))
    np.testing.assert_allclose(nhwc(latents), io["encoder_features"], atol=ATOL, rtol=0)
    np.testing.assert_array_equal(ids.numpy(), io["ids"])
    np.testing.assert_allclose(nhwc(quantized), io["quantized"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(nhwc(decoded), io["decoded"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(nhwc(from_random), io["decoded_from_ids_random"], atol=ATOL, rtol=0)


# ------------------------------------------------------------------------------------------- decoding parity
RUNS = ["gen_T8", "gen_T12", "edit_T8", "edit_T12", "edit_T12_start2"]


def official_run(name: str) -> dict:
    z = np.load(FIXTURES / "decode_small.npz")
    run = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(name + "/")}
    for key in ("inputs", "step_inputs", "final_seqs"):  # drop the class token; -1 -> our mask id
        run[key] = np.where(run[key] < 0, MASK, run[key])
    return run


@pytest.mark.parametrize("name", RUNS)
def test_decoding_replays_the_official_steps_exactly(name, transformer, monkeypatch):
    """Our loop, fed the official per-step logits and Gumbel draws, makes the official tokens at every step.

    gen_T8 stores the official logits and categorical-sampling noise: both are replayed as they are. The
    other runs store the confidence noise and each step's sampled tokens; their logits come from our
    converted fixture transformer (the model they were decoded with) and the sampling noise is the one that
    selects the official sample, so the counts, confidences and re-masking are ours alone.
    """
    run = official_run(name)
    steps, start = int(run["num_iter"]), int(run["start_iter"])
    labels = torch.from_numpy(run["inputs"][:, 0]).long() - CODES
    fed, draws = [], []
    for i in range(steps - start):
        draws.append(("sample", i))
        if start + i < steps - 1:
            draws.append(("choice", i))

    def logits_fn(tokens):
        i = len(fed)
        fed.append(tokens.clone())
        if "step_logits" in run:
            return torch.from_numpy(run["step_logits"][i][:, 1:])
        with torch.no_grad():
            return transformer(tokens, labels)

    def official_gumbel(shape, generator, device, where=None):
        kind, i = draws.pop(0)
        if kind == "choice":
            noise = torch.from_numpy(run["gumbel_choice"][i][:, 1:])
        elif "gumbel_sample" in run:
            noise = torch.from_numpy(run["gumbel_sample"][i][:, 1:])
        else:
            sampled = torch.from_numpy(run["final_seqs"][:, start + i, 1:]).long()
            noise = torch.zeros(shape).scatter_(-1, sampled.unsqueeze(-1), 1e4)
        return noise if where is None else noise[where]  # the decoder may ask for the unknown rows only

    monkeypatch.setattr(decoding, "gumbel_noise", official_gumbel)
    out, history = decoding.decode(logits_fn, torch.from_numpy(run["inputs"][:, 1:]).long(), mask_id=MASK,
                                   steps=steps, start_iter=start, schedule="cosine",
                                   choice_temperature=float(run["choice_temperature"]), return_history=True)
    assert not draws
    for i, tokens in enumerate(fed):
        np.testing.assert_array_equal(tokens.numpy(), run["step_inputs"][i][:, 1:], err_msg=f"step {i}")
        np.testing.assert_array_equal((tokens == MASK).sum(-1).numpy(), run["unknown_fed"][i])
    for i in range(steps - start - 1):
        np.testing.assert_array_equal((history[:, i] == MASK).sum(-1).numpy(), run["mask_len"][i])
    np.testing.assert_array_equal(out.numpy(), run["final_seqs"][:, -1, 1:])
    if "step_logits" not in run:  # the confidences our logits give equal the official ones
        for i, tokens in enumerate(fed):
            with torch.no_grad():
                probs = transformer(tokens, labels).softmax(-1)
            sampled = torch.from_numpy(run["final_seqs"][:, start + i, 1:]).long()
            unknown = (tokens == MASK).numpy()
            ours = probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1).numpy()
            np.testing.assert_allclose(ours[unknown], run["selected_probs"][i][:, 1:][unknown], atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------- configs from shapes
def official_shapes(name: str) -> dict[str, tuple]:
    tree = json.loads((FIXTURES / "official_param_tree.json").read_text())[name]["params"]
    return {path: tuple(shape) for path, shape in tree.items()}


@pytest.mark.parametrize("tree,preset", [("transformer_256", "imagenet-256"), ("transformer_512", "imagenet-512")])
def test_imagenet_transformer_presets_are_recognised_from_the_official_shapes(tree, preset):
    assert infer_transformer_config(official_shapes(tree)) == TRANSFORMER_PRESETS[preset]
    assert infer_transformer_config(official_shapes(tree), codebook_size=1024) == TRANSFORMER_PRESETS[preset]


def test_imagenet_tokenizer_preset_is_recognised_from_the_official_shapes():
    assert infer_tokenizer_config(official_shapes("tokenizer")) == TOKENIZER_PRESETS["imagenet"]
    assert infer_tokenizer_config(official_shapes("tokenizer"), grid_size=32).image_size == 512


def test_small_transformer_config_needs_the_codebook_size_and_then_is_read_off_the_shapes():
    with pytest.raises(ValueError, match="pass codebook_size"):
        load_official_transformer(TRANSFORMER)
    assert load_official_transformer(TRANSFORMER, codebook_size=CODES).config == TransformerConfig(
        codebook_size=64, num_classes=10, grid_size=8, hidden_size=64, num_layers=2, num_heads=4,
        intermediate_size=128, null_class=False)


def test_tokenizer_image_size_must_be_given_for_a_non_preset_tokenizer():
    with pytest.raises(ValueError, match="pass image_size"):
        load_official_tokenizer(TOKENIZER)


# ------------------------------------------------------------------------------------------- strictness
def write_modified(tmp_path, source, change) -> Path:
    arrays = read_flax_msgpack(source)
    change(arrays)
    return write_flax_msgpack(arrays, tmp_path / "modified.msgpack")


def test_reader_writer_round_trip_is_byte_identical(tmp_path):
    for source in (TRANSFORMER, TOKENIZER):
        copy = write_flax_msgpack(read_flax_msgpack(source), tmp_path / source.name)
        assert copy.read_bytes() == source.read_bytes()  # our writer serialises as flax does


@pytest.mark.parametrize("change,message", [
    (lambda a: a.pop("TransformerLayer_1/Mlp_0/layer_output/bias"),
     r"missing arrays: TransformerLayer_1/Mlp_0/layer_output/bias$"),
    (lambda a: a.__setitem__("TransformerLayer_0/Mlp_0/extra/kernel", np.zeros((2, 2), np.float32)),
     r"unexpected arrays: TransformerLayer_0/Mlp_0/extra/kernel$"),
    (lambda a: a.__setitem__("TransformerLayer_0/Attention_0/self_attention/query/kernel",
                             np.zeros((64, 8, 8), np.float32)),
     r"mis-shaped arrays: TransformerLayer_0/Attention_0/self_attention/query/kernel \[64, 8, 8\] "
     r"\(expected \[64, 4, 16\]\)$"),
    (lambda a: a.__setitem__("MlmLayer_0/mlm_dense/kernel", np.zeros((64, 65), np.float32)),
     r"mis-shaped arrays: MlmLayer_0/mlm_dense/kernel \[64, 65\] \(expected \[64, 64\]\)$"),
])
def test_missing_extra_and_misshaped_arrays_are_refused_by_official_path(tmp_path, change, message):
    path = write_modified(tmp_path, TRANSFORMER, change)
    config = load_official_transformer(TRANSFORMER, codebook_size=CODES).config
    with pytest.raises(ValueError, match=message) as err:
        load_official_transformer(path, config)
    assert "\n" not in str(err.value)


def test_a_missing_tokenizer_shortcut_is_named(tmp_path):
    path = write_modified(tmp_path, TOKENIZER, lambda a: a.pop("decoder/ResBlock_4/Conv_2/kernel"))
    with pytest.raises(ValueError, match="missing arrays: decoder/ResBlock_4/Conv_2/kernel"):
        load_official_tokenizer(path, image_size=16)


@pytest.mark.parametrize("make,message", [
    (lambda p: p.write_bytes(TRANSFORMER.read_bytes()[:100_000]), "truncated"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8), "not a .*Flax msgpack checkpoint"),
    (lambda p: p.write_text("just text, not msgpack\n"), "not a .*Flax msgpack checkpoint"),
    (lambda p: p.write_bytes(__import__("msgpack").packb({"state": {"a": 1}})), "holds no 'params' tree"),
])
def test_truncated_and_foreign_files_give_a_one_line_error(tmp_path, make, message):
    path = tmp_path / "bad.msgpack"
    make(path)
    with pytest.raises(ValueError, match=message) as err:
        load_official_transformer(path, codebook_size=CODES)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_tokenizer_config_outside_the_official_layout_is_refused():
    config = TOKENIZER_PRESETS["imagenet"].__class__(**{**TOKENIZER_PRESETS["imagenet"].__dict__, "downsample": "conv"})
    with pytest.raises(ValueError, match="downsample='conv'"):
        load_official_tokenizer(TOKENIZER, config)


# ------------------------------------------------------------------------------------------- conversion
def convert_small(out: Path, **kwargs) -> MaskGIT:
    return convert_official(transformer=TRANSFORMER, tokenizer=TOKENIZER, out=out, **kwargs)


def test_converted_directory_loads_bit_identically_and_samples(tmp_path):
    model = convert_small(tmp_path / "small", class_names=[f"c{i}" for i in range(10)])
    loaded = MaskGIT.from_pretrained(tmp_path / "small")
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    loaded.save_pretrained(tmp_path / "again")  # convert -> save_pretrained -> from_pretrained: same bits
    again = MaskGIT.from_pretrained(tmp_path / "again").state_dict()
    assert all(torch.equal(ours[k], again[k]) for k in ours)
    assert loaded.config == model.config and loaded.config.tokenizer.image_size == 16
    g = torch.Generator().manual_seed(0)
    images = loaded.generate(["c3", 5], steps=2, generator=g)
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()


def test_conversion_never_overwrites_without_overwrite_and_never_swallows_its_inputs(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_small(out)
    assert (out / "precious.txt").read_text() == "keep me"
    convert_small(out, overwrite=True)
    assert not (out / "precious.txt").exists() and (out / "config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "t.msgpack").write_bytes(TRANSFORMER.read_bytes())
    with pytest.raises(ValueError, match="holds the input"):
        convert_official(transformer=inputs / "t.msgpack", tokenizer=TOKENIZER, out=inputs, overwrite=True)
    assert (inputs / "t.msgpack").is_file()


def test_a_tokenizer_that_does_not_fit_the_transformer_is_refused(tmp_path):
    from maskgit.convert.official import _fitting_transformer_config

    # An imagenet-256 transformer (1024 codes) with a 512-code tokenizer: named before any array is converted.
    with pytest.raises(ValueError, match="imagenet-256 preset .1024 codes. but the tokenizer has 512 codes"):
        _fitting_transformer_config(official_shapes("transformer_256"), 512)
    # A tokenizer for another grid than the transformer's, with configs given: refused, nothing written.
    tokenizer_config = load_official_tokenizer(TOKENIZER, image_size=32).config
    with pytest.raises(ValueError, match="grid"):
        convert_official(transformer=TRANSFORMER, tokenizer=TOKENIZER, out=tmp_path / "x",
                         tokenizer_config=tokenizer_config)
    assert not (tmp_path / "x").exists()


def test_imagenet_class_names_resolve_by_name_and_synonym():
    from maskgit.class_names import class_index_by_name
    from maskgit.convert import imagenet_class_names

    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench, Tinca tinca" and names[207] == "golden retriever"
    assert class_index_by_name(names, "golden retriever") == 207
    assert class_index_by_name(names, "Tench") == 0
    with pytest.raises(ValueError, match="ambiguous"):
        class_index_by_name(names, "crane")  # the bird (134) and the machine (517)
    with pytest.raises(ValueError, match="close"):
        class_index_by_name(names, "golden retreiver")


def test_cli_converts_with_progress_and_the_directory_samples_and_edits(tmp_path, capsys):
    from PIL import Image

    from maskgit.cli import main

    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"class {i}" for i in range(10)) + "\n")
    argv = ["convert-official", "--transformer", str(TRANSFORMER), "--tokenizer", str(TOKENIZER), "--out",
            str(tmp_path / "m"), "--class-names", str(names)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert [line[:5] for line in out.splitlines() if line.startswith("[")] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and err.count("\n") == 1
    assert main(["sample", "--model", str(tmp_path / "m"), "--labels", "class 1", "--num", "1", "--steps", "2",
                 "--out", str(tmp_path / "s")]) == 0
    assert list((tmp_path / "s").glob("*.png"))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    Image.fromarray(np.pad(np.full((8, 8), 255, np.uint8), 4)).save(tmp_path / "mask.png")
    # Official models have no null class, so every edit names a class.
    model = ["--model", str(tmp_path / "m"), "--steps", "4", "--label", "class 2"]
    for task, extra in (("inpaint", ["--mask", str(tmp_path / "mask.png")]), ("outpaint", ["--pad", "0,0,8,0"]),
                        ("edit", ["--box", "4,4,12,12", "--steps", "6"])):
        assert main([task, str(tmp_path / "in.png"), *model, *extra, "--out", str(tmp_path / task)]) == 0, task
        assert Image.open(tmp_path / task / f"in_{task}.png").size == ((24, 16) if task == "outpaint" else (16, 16))


@pytest.mark.slow
def test_official_imagenet_256_shapes_convert_and_sample_from_the_command_line(tmp_path):
    """Acceptance: random arrays with exactly the official ImageNet-256 paths and shapes, in the official
    serialisation, convert with config=None (presets recognised) and sample through the CLI (~1-3 min)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from official_imagenet import write_synthetic_checkpoints

    transformer_path, tokenizer_path = write_synthetic_checkpoints(tmp_path)
    cli = [sys.executable, "-m", "maskgit.cli"]
    done = subprocess.run(cli + ["convert-official", "--transformer", str(transformer_path), "--tokenizer",
                                 str(tokenizer_path), "--out", str(tmp_path / "imagenet-256")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "transformer: imagenet-256" in done.stdout
    config = json.loads((tmp_path / "imagenet-256" / "config.json").read_text())
    assert config["transformer"] == json.loads(json.dumps(TRANSFORMER_PRESETS["imagenet-256"].__dict__))
    assert config["class_names"][207] == "golden retriever"
    done = subprocess.run(cli + ["sample", "--model", str(tmp_path / "imagenet-256"), "--labels", "1", "--steps", "2",
                                 "--out", str(tmp_path / "samples")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    from PIL import Image

    assert Image.open(tmp_path / "samples" / "0000_goldfish.png").size == (256, 256)
