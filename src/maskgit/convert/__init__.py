"""Importers for checkpoints of other implementations. Re-exports only."""

from .flax_msgpack import read_flax_msgpack, write_flax_msgpack
from .official import convert_official, imagenet_class_names, load_official_tokenizer, load_official_transformer

__all__ = ["convert_official", "imagenet_class_names", "load_official_tokenizer", "load_official_transformer",
           "read_flax_msgpack", "write_flax_msgpack"]
