"""KDCIPlugin: the one object the distillation loop talks to.

It owns the CausalIntervention (trained with the student), the current confounder
dictionary (rebuilt per substitution set) and the ablation. The dictionary lives in ordinary
persistent buffers whose shape follows K', so ``state_dict()`` / ``load_state_dict()`` (and a
safetensors checkpoint, since every entry is a tensor) restore it exactly on resume.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kdci_core.common.errors import InputError, as_int, check_range
from kdci_core.kdci.dictionary import (ConfounderDictionary, build_confounder_dictionary,
                                       random_prototypes_like)
from kdci_core.kdci.intervention import FUSIONS, CausalIntervention
from kdci_core.kdci.kcurve import k_curve

ABLATIONS = ("none", "random-lambda", "random-prototypes", "uniform-proportions")


# Buffers that hold the dictionary; their shapes change with every rebuild.
_DICT_BUFFERS = ("dict_prototypes", "dict_proportions", "dict_labels", "dict_meta")


class KDCIPlugin(nn.Module):
    """``rebuild(features)`` sets the dictionary; ``plugin(student_logits)`` returns s_hat."""

    def __init__(self, num_classes: int, *, k: int | str, ablation: str = "none", attn_dim: int = 256,
                 fusion: str = "add", pca_dim: int | None = None,
                 prototype_dim: int | None = None, seed: int = 0, attn_input: str = "raw",
                 tau: float = 1.0, attn_init_gain: float = 1.0):
        super().__init__()
        #: ``k="auto"``: the K curve's recommended K on the first dictionary's data, then kept
        self.k_auto = k == "auto"
        self.k = 0 if self.k_auto else check_range("k", as_int("k", k), low=1, integer=True)
        if ablation not in ABLATIONS:
            raise InputError(f"ablation: expected one of {', '.join(ABLATIONS)}, "
                             f"found {ablation!r}")
        if fusion not in FUSIONS:
            raise InputError(f"fusion: expected one of {', '.join(FUSIONS)}, found {fusion!r}")
        if pca_dim is not None:
            pca_dim = check_range("pca_dim", as_int("pca_dim", pca_dim), low=1, integer=True)
        self.ablation, self.pca_dim = ablation, pca_dim
        self.seed = as_int("seed", seed)
        self.intervention = CausalIntervention(
            num_classes, attn_dim, fusion, prototype_dim=prototype_dim,
            lambda_mode="random" if ablation == "random-lambda" else "attention",
            attn_input=attn_input, tau=tau, init_gain=attn_init_gain)
        dim = self.intervention.prototype_dim or self.intervention.num_classes
        self.register_buffer("dict_prototypes", torch.zeros(0, dim))
        self.register_buffer("dict_proportions", torch.zeros(0))
        self.register_buffer("dict_labels", torch.zeros(0, dtype=torch.long))
        # [k_requested, pca_components] of the current dictionary.
        self.register_buffer("dict_meta", torch.zeros(2, dtype=torch.long))
        self.register_buffer("rebuild_count_t", torch.zeros((), dtype=torch.long))
        self.register_buffer("k_t", torch.tensor(self.k, dtype=torch.long))  # the K in use (auto: chosen)

    @property
    def rebuild_count(self) -> int:
        """How many times ``rebuild`` ran (saved in the state dict, so it survives a resume)."""
        return int(self.rebuild_count_t)

    @property
    def has_dictionary(self) -> bool:
        return self.dict_prototypes.shape[0] > 0

    @property
    def dictionary(self) -> ConfounderDictionary | None:
        """The dictionary in use (after the ablation), or None before the first rebuild."""
        if not self.has_dictionary:
            return None
        return ConfounderDictionary(prototypes=self.dict_prototypes,
                                    proportions=self.dict_proportions, labels=self.dict_labels,
                                    k_requested=int(self.dict_meta[0]),
                                    pca_components=int(self.dict_meta[1]))

    def _device(self) -> torch.device:
        return self.intervention.W_h.weight.device

    def rebuild(self, features: Tensor) -> ConfounderDictionary:
        """Cluster the dictionary-source features (``N x D``), apply the ablation, store it."""
        count, dim = self.rebuild_count, self.dict_prototypes.shape[1]
        if isinstance(features, Tensor) and (features.dim() != 2 or features.shape[1] != dim):
            raise InputError(f"features: expected shape (N, {dim}) (num_classes, or "
                             f"prototype_dim for another dictionary source), found "
                             f"{tuple(features.shape)}")
        if self.k_auto and int(self.k_t) == 0:
            self.k_t = torch.tensor(k_curve(features, pca_dim=self.pca_dim, seed=self.seed).recommended_k,
                                    dtype=torch.long, device=self.k_t.device)
        self.k = int(self.k_t)
        d = build_confounder_dictionary(features, self.k, pca_dim=self.pca_dim, seed=self.seed)
        if self.ablation == "random-prototypes":
            # New noise per rebuild, yet reproducible from (seed, rebuild count).
            d = random_prototypes_like(d, features, seed=self.seed * 1_000_003 + count + 1)
        elif self.ablation == "uniform-proportions":
            d = d.with_uniform_proportions()
        d = d.to(self._device())
        self.dict_prototypes = d.prototypes.to(self.dict_prototypes.dtype)
        self.dict_proportions = d.proportions.to(self.dict_proportions.dtype)
        self.dict_labels = d.labels
        self.dict_meta = torch.tensor([d.k_requested, d.pca_components], dtype=torch.long,
                                      device=self.dict_meta.device)
        self.rebuild_count_t = torch.tensor(count + 1, dtype=torch.long,
                                            device=self.rebuild_count_t.device)
        return self.dictionary

    def forward(self, student_logits: Tensor) -> Tensor:
        """s_hat = f(s, E_z) against the current dictionary."""
        if not self.has_dictionary:
            raise RuntimeError("KDCIPlugin: no confounder dictionary yet; call "
                               "plugin.rebuild(features) before plugin(student_logits)")
        return self.intervention(student_logits, self.dict_prototypes, self.dict_proportions)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # The dictionary's shape depends on K' and N: resize our buffers to the saved shapes
        # first, so the default copy-in succeeds instead of reporting a size mismatch.
        for name in _DICT_BUFFERS:
            key = prefix + name
            if key in state_dict and isinstance(state_dict[key], Tensor):
                own = self._buffers[name]
                if name == "dict_prototypes" and (state_dict[key].dim() != 2 or
                                                  state_dict[key].shape[1] != own.shape[1]):
                    continue  # another feature dimension: let the default report it
                self._buffers[name] = torch.empty(state_dict[key].shape, dtype=own.dtype,
                                                  device=own.device)
        if prefix + "k_t" not in state_dict:  # a checkpoint of release 0.1: K was fixed
            state_dict[prefix + "k_t"] = torch.tensor(self.k, dtype=torch.long)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        self.k = int(self.k_t)

    def extra_repr(self) -> str:
        k = f"auto ({self.k})" if self.k_auto else self.k
        return f"k={k}, ablation={self.ablation!r}, pca_dim={self.pca_dim}, seed={self.seed}"
