"""VQGAN tokenizer: vector quantizer, encoder/decoder, discriminators and losses. Re-exports only."""

from .quantizer import CodeUsage, QuantizerOutput, VectorQuantizer
from .vqgan import VQGAN, Decoder, Encoder, load_tokenizer, save_tokenizer

__all__ = ["CodeUsage", "Decoder", "Encoder", "QuantizerOutput", "VQGAN", "VectorQuantizer", "load_tokenizer",
           "save_tokenizer"]
