"""Training loops (tokenizer, transformer) and their helpers: checkpoints, EMA, token cache. Re-exports only.

The loops are imported lazily so that importing the checkpoint helpers stays light.
"""

from .checkpoint import latest_checkpoint, load_training_state, save_training_state


def __getattr__(name):
    if name == "train_tokenizer":
        from .tokenizer import train_tokenizer

        return train_tokenizer
    if name == "train_transformer":
        from .transformer import train_transformer

        return train_transformer
    raise AttributeError(f"module 'maskgit.training' has no attribute {name!r}")


__all__ = ["latest_checkpoint", "load_training_state", "save_training_state", "train_tokenizer", "train_transformer"]
