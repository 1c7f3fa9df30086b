"""Cached decoding passes (ReCAP, arXiv 2505.19089): cheap passes between full ones that reuse keys and values.

A full pass runs the whole sequence and keeps every layer's keys and values and the final hidden states. A cheap
pass recomputes only the positions whose input token changed since that full pass plus the positions whose
logits are needed, letting them attend to the cached keys/values of every other position (SPEC section 4b).
With no token changed a cheap pass equals the full pass; otherwise it approximates the bidirectional model
(unchanged positions do not see the new tokens), so its quality is measured, not assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .transformer import MaskGITTransformer


@dataclass
class _Cache:
    ids: torch.Tensor  # (B, L) the full pass's input ids
    keys: list[torch.Tensor]  # per layer, (B, heads, L, head_dim)
    values: list[torch.Tensor]
    hidden: torch.Tensor  # (B, L, D) final hidden states


class CachedPasses:
    """A `(tokens, labels, rows=None) -> logits` model function that runs `cheap_passes` cheap passes after each
    full one (0: every call is a plain full forward). One instance serves one decoding run: it keeps its cache
    between calls, and a call with another batch shape starts over with a full pass."""

    def __init__(self, network: MaskGITTransformer, cheap_passes: int):
        if isinstance(cheap_passes, bool) or not isinstance(cheap_passes, int) or cheap_passes < 0:
            raise ValueError(f"cheap_passes must be an integer >= 0, got {cheap_passes!r}")
        self.network, self.cheap_passes = network, cheap_passes
        self.calls, self.cache = 0, None
        self.rows_computed = 0  # positions run through the layers, over all calls (for cost accounting)

    def __call__(self, tokens: torch.Tensor, labels: torch.Tensor | None,
                 rows: torch.Tensor | None = None) -> torch.Tensor:
        net = self.network
        ids = net.input_ids(tokens, labels)  # (B, L)
        full = (self.cheap_passes == 0 or self.cache is None or self.cache.ids.shape != ids.shape
                or self.calls % (self.cheap_passes + 1) == 0)
        self.calls += 1
        if full and self.cheap_passes == 0:
            self.rows_computed += ids.numel()
            return net(tokens, labels, rows=rows)
        hidden = self._full(ids) if full else self._cheap(ids, tokens, rows)
        x = hidden[:, ids.shape[1] - tokens.shape[1]:]  # (B, N, D): the image tokens
        return net.logits(x if rows is None else x[rows])

    def _full(self, ids: torch.Tensor) -> torch.Tensor:
        keys, values = [], []

        def record(i: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            keys.append(k)
            values.append(v)
            return k, v

        hidden = self.network.hidden(ids, keys_values=record)  # (B, L, D)
        self.cache = _Cache(ids, keys, values, hidden)
        self.rows_computed += ids.numel()
        return hidden

    def _cheap(self, ids: torch.Tensor, tokens: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        cache, offset = self.cache, ids.shape[1] - tokens.shape[1]
        need = ids != cache.ids  # (B, L): inputs changed since the full pass
        need[:, offset:] |= (tokens == self.network.config.mask_id) if rows is None else rows  # logits needed
        width = int(need.sum(-1).max())
        if width == 0:
            return cache.hidden
        # (B, M): each sample's needed positions first; a sample with fewer is padded with other positions,
        # recomputed too (exact for them), so the batch stays one rectangular call.
        index = need.to(torch.uint8).argsort(dim=-1, descending=True, stable=True)[:, :width]
        self.rows_computed += index.numel()

        def swap_in(i: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            where = index[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[-1])  # (B, heads, M, head_dim)
            return (cache.keys[i].clone().scatter_(2, where, k.to(cache.keys[i].dtype)),
                    cache.values[i].clone().scatter_(2, where, v.to(cache.values[i].dtype)))

        fresh = self.network.hidden(ids.gather(1, index), index, swap_in)  # (B, M, D)
        where = index.unsqueeze(-1).expand(-1, -1, fresh.shape[-1])
        return cache.hidden.clone().scatter_(1, where, fresh.to(cache.hidden.dtype))
