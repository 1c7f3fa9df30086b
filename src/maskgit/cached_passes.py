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


# A scheduled cheap pass that would recompute more than this fraction of the sequence runs as a full pass: it
# would cost about as much (the cache gathers cost the rest) and the full pass is exact.
FULL_ABOVE = 0.8


class CachedPasses:
    """A `(tokens, labels, rows=None) -> logits` model function that runs `cheap_passes` cheap passes after each
    full one (0: every call is a plain full forward). One instance serves one decoding run: it keeps its cache
    between calls, and a call with another batch shape starts over with a full pass. A scheduled cheap pass that
    would recompute more than `FULL_ABOVE` of the image positions runs as a full pass instead (and the count restarts).
    The network must be bidirectional (keys are attended to in any order)."""

    def __init__(self, network: MaskGITTransformer, cheap_passes: int):
        if isinstance(cheap_passes, bool) or not isinstance(cheap_passes, int) or cheap_passes < 0:
            raise ValueError(f"cheap_passes must be an integer >= 0, got {cheap_passes!r}")
        if network.config.causal:
            raise ValueError("cached passes need a bidirectional (MaskGIT) network, not a causal one")
        self.network, self.cheap_passes = network, cheap_passes
        self.since_full, self.cache = 0, None
        self.rows_computed = 0  # positions run through the layers, over all calls (for cost accounting)

    def __call__(self, tokens: torch.Tensor, labels: torch.Tensor | None,
                 rows: torch.Tensor | None = None) -> torch.Tensor:
        net = self.network
        ids = net.input_ids(tokens, labels)  # (B, L)
        offset = ids.shape[1] - tokens.shape[1]  # the class token
        if self.cheap_passes == 0:
            self.rows_computed += ids.numel()
            return net(tokens, labels, rows=rows)
        cheap = (self.cache is not None and self.cache.ids.shape == ids.shape
                 and self.since_full < self.cheap_passes)
        if cheap:
            need = ids != self.cache.ids  # (B, L): inputs changed since the full pass
            need[:, offset:] |= (tokens == net.config.mask_id) if rows is None else rows  # logits needed
            width = int(need.sum(-1).max())
            cheap = width <= FULL_ABOVE * tokens.shape[1]
        if not cheap:
            self.since_full = 0
            x = self._full(ids)[:, offset:]  # (B, N, D)
            return net.logits(x if rows is None else x[rows])
        self.since_full += 1
        if width == 0:
            x = self.cache.hidden[:, offset:]
            return net.logits(x if rows is None else x[rows])
        return self._cheap(ids, need, width, offset, rows)

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

    def _cheap(self, ids: torch.Tensor, need: torch.Tensor, width: int, offset: int,
               rows: torch.Tensor | None) -> torch.Tensor:
        """Recompute the `need` positions ((B, L) bool, at most `width` per sample) against the cached keys and
        values of the others; the logits at `rows` (None: every image position)."""
        cache, batch = self.cache, ids.shape[0]
        # (B, L): each sample's needed positions first, in position order; a sample with fewer than `width` is
        # padded with other positions, recomputed too (exact for them), so the batch stays one rectangular call
        order = need.to(torch.uint8).argsort(dim=-1, descending=True, stable=True)
        index, rest = order[:, :width], order[:, width:]
        self.rows_computed += index.numel()
        samples = torch.arange(batch, device=ids.device)[:, None]

        def swap_in(i: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # attention does not depend on the order of the keys: fresh ones first, then the cached rest
            # (indexing (B, heads, L, hd) with [samples, :, rest] gives (B, L - M, heads, hd))
            return tuple(torch.cat([new.transpose(1, 2), old[samples, :, rest].to(new.dtype)], 1).transpose(1, 2)
                         for new, old in ((k, cache.keys[i]), (v, cache.values[i])))

        fresh = self.network.hidden(ids.gather(1, index), index, swap_in)  # (B, M, D)
        if rows is None:  # every image position: the fresh rows over the cached ones
            hidden = cache.hidden.clone()
            hidden[samples, index] = fresh.to(hidden.dtype)
            return self.network.logits(hidden[:, offset:])
        # the rows wanted are among the fresh ones, which are in position order: select them in row-major order
        position = index - offset
        wanted = rows.gather(1, position.clamp(min=0)) & (position >= 0)  # (B, M)
        return self.network.logits(fresh[wanted])
