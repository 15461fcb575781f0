"""Contextual Prompt Expansion: cached text encodings and the context tokens
(semantic neighbours, WordNet hypernyms) appended to each query's text.

Text encodings depend only on the string, so they are cached per canonical
string; context tokens depend on the whole vocabulary, so they are computed
once per vocabulary, never per image.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from . import wordnet
from .grounding import Grounder, TextBatch
from .vocabulary import canonicalize

ENCODE_CHUNK = 64


class TextCache:
    """Per-string SAM 3 text encodings (features, mask, pooled embedding).

    Least recently used strings are forgotten beyond ``max_entries``, so a
    node whose vocabulary changes all day keeps a bounded cache.
    """

    def __init__(self, grounder: Grounder, max_entries: int = 20000):
        self.grounder = grounder
        self.max_entries = max_entries
        self._entries: "OrderedDict[str, Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]" = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _ensure(self, strings: Sequence[str]) -> List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        with self._lock:
            missing = list(dict.fromkeys(s for s in strings if s not in self._entries))
            self.hits += len(strings) - len(missing)
            self.misses += len(missing)
        for start in range(0, len(missing), ENCODE_CHUNK):
            chunk = missing[start : start + ENCODE_CHUNK]
            out = self.grounder.encode_text(chunk)
            feats, mask, embeds = out["language_features"], out["language_mask"], out["language_embeds"]
            # Pooled embedding: masked mean over the valid tokens.
            valid = (~mask).to(embeds.dtype).transpose(0, 1).unsqueeze(-1)
            pooled = ((embeds * valid).sum(0) / valid.sum(0).clamp_min(1.0)).float()
            with self._lock:
                for i, s in enumerate(chunk):
                    self._entries[s] = (feats[:, i].clone(), mask[i].clone(), pooled[i].clone())
        with self._lock:
            found = []
            for s in strings:
                self._entries.move_to_end(s)
                found.append(self._entries[s])
            while len(self._entries) > max(self.max_entries, len(set(strings))):
                self._entries.popitem(last=False)
            return found

    def batch(self, strings: Sequence[str]) -> TextBatch:
        """Features [seq, K, d] and mask [K, seq] for K strings."""
        entries = self._ensure(strings)
        return TextBatch(
            features=torch.stack([e[0] for e in entries], dim=1),
            mask=torch.stack([e[1] for e in entries], dim=0),
        )

    def pooled(self, strings: Sequence[str]) -> torch.Tensor:
        """Pooled token embeddings [K, D] (float32)."""
        return torch.stack([e[2] for e in self._ensure(strings)], dim=0)


@dataclass
class ContextTokens:
    """Per-query memory tokens [N, M, d] and their ignore-mask [N, M]."""

    tokens: torch.Tensor
    mask: torch.Tensor
    hypernyms: Dict[int, List[str]]

    def extend(self, text: TextBatch, queries: Sequence[int]) -> TextBatch:
        """``text`` with these queries' memory tokens appended."""
        idx = torch.as_tensor(list(queries), dtype=torch.long, device=self.tokens.device)
        tokens = self.tokens[idx].transpose(0, 1).to(text.features.dtype)  # [M, K, d]
        mask = self.mask[idx]
        return TextBatch(
            features=torch.cat([text.features, tokens], dim=0),
            mask=torch.cat([text.mask, mask.to(text.mask.device)], dim=1),
        )


def _resizer(grounder: Grounder) -> torch.nn.Module:
    return grounder.model.backbone.language_backbone.resizer


@torch.inference_mode()
def neighbour_tokens(pooled: torch.Tensor, resizer: torch.nn.Module, count: int) -> torch.Tensor:
    """[N, count, d]: softmax-weighted pooled embeddings of each query's
    ``count`` most cosine-similar other queries, projected to the prompt width."""
    n = pooled.shape[0]
    unit = pooled / pooled.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    sim = unit @ unit.T
    sim.fill_diagonal_(float("-inf"))
    k = min(count, n)
    values, index = sim.topk(k, dim=1)
    if k < count:  # tiny vocabularies: pad with zero-weight entries
        values = torch.cat([values, values.new_full((n, count - k), float("-inf"))], dim=1)
        index = torch.cat([index, index.new_zeros((n, count - k))], dim=1)
    weights = torch.softmax(values, dim=1).nan_to_num(0.0)
    weighted = pooled[index] * weights.unsqueeze(-1)
    return resizer(weighted.to(resizer.weight.dtype)).float()


@torch.inference_mode()
def build_context(
    cache: TextCache,
    canonical: Sequence[str],
    neighbours: int,
    hypernyms: int,
) -> Optional[ContextTokens]:
    """The memory tokens of a vocabulary's queries, given as their canonical
    strings (``vocabulary.canonicalize``); None when there are none."""
    resizer = _resizer(cache.grounder)
    parts: List[torch.Tensor] = []
    masks: List[torch.Tensor] = []
    n = len(canonical)
    device = cache.grounder.device
    if neighbours > 0:
        parts.append(neighbour_tokens(cache.pooled(canonical), resizer, neighbours))
        masks.append(torch.zeros(n, neighbours, dtype=torch.bool, device=device))
    found: Dict[int, List[str]] = {}
    if hypernyms > 0:
        found = {i: wordnet.hypernyms(name, hypernyms) for i, name in enumerate(canonical)}
        unique = list(dict.fromkeys(h for hs in found.values() for h in hs))
        if unique:  # as the reference: no hypernym anywhere, no hypernym tokens
            projected = resizer(cache.pooled([canonicalize(h) for h in unique]).to(resizer.weight.dtype)).float()
            row = {h: i for i, h in enumerate(unique)}
            tokens = torch.zeros(n, hypernyms, projected.shape[-1], device=device)
            mask = torch.ones(n, hypernyms, dtype=torch.bool, device=device)
            for q, hs in found.items():
                for m, h in enumerate(hs[:hypernyms]):
                    tokens[q, m] = projected[row[h]]
                    mask[q, m] = False
            parts.append(tokens)
            masks.append(mask)
    if not parts:
        return None
    return ContextTokens(torch.cat(parts, dim=1), torch.cat(masks, dim=1), found)
