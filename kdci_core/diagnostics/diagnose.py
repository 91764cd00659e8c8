"""One diagnosis of a method's substitution data: FID, class proportions, imbalance, dictionary.

This is what ``python -m kdci_core diagnose`` prints and what the Substitution data and
Confounder dictionary pages show: the shift (image quality, class skew) that KDCI treats as a
confounder, and the dictionary KDCI would build from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..common.errors import check_range
from ..common.progress import Progress, report
from ..distill import DistillConfig
from ..kdci import ConfounderDictionary, build_confounder_dictionary
from ..methods import METHODS
from ..teachers.onnx_teacher import ONNX_CAPABILITIES, is_onnx_path
from .fid import FIDResult, compute_fid, extractor_ready
from ..kdci.kcurve import KCurve, k_curve
from .proportions import Imbalance, class_proportions, imbalance, proportions_by_round
from .substitution import DEFAULT_ROUNDS, Reference, SubstitutionData, collect_substitution_data

#: FID reference: at most this many test images (a fixed, seeded subset)
MAX_REFERENCE = 2000


@dataclass
class ClassBalance:
    """Class proportions of the substitution data (teacher pseudo-labels) and of the test split."""

    substitution: np.ndarray
    original: np.ndarray
    substitution_imbalance: Imbalance
    original_imbalance: Imbalance
    by_round: list[np.ndarray] = field(default_factory=list)

    def to_dict(self, class_names) -> dict:
        return {"class_names": list(class_names), "substitution": self.substitution.tolist(),
                "original": self.original.tolist(),
                "imbalance": {"substitution": self.substitution_imbalance.to_dict(),
                              "original": self.original_imbalance.to_dict()},
                "by_round": [{"round": i, "proportions": p.tolist(), "imbalance": imbalance(p).to_dict()}
                             for i, p in enumerate(self.by_round)]}


def class_balance(data: SubstitutionData, reference: Reference) -> ClassBalance:
    c = data.info.num_classes
    sub = class_proportions(data.pseudo_labels, c)
    orig = class_proportions(reference.test.labels, c)
    rounds = proportions_by_round(data.pseudo_labels, data.rounds, c) if data.num_rounds > 1 else []
    return ClassBalance(sub, orig, imbalance(sub), imbalance(orig), rounds)


def reference_subset(reference: Reference, n: int = MAX_REFERENCE, seed: int = 0,
                     split: str = "test") -> torch.Tensor:
    """A fixed random subset of a split's images (all of them when there are at most ``n``)."""
    images = getattr(reference, split).images
    if len(images) <= n:
        return images
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return images[idx]


def dictionary_for(data: SubstitutionData, k: int | None = None, *, pca_dim: int | None = None,
                   seed: int = 0) -> ConfounderDictionary:
    """The dictionary KDCI would build from these data (K defaults to the method's)."""
    k = k or METHODS.get(data.method).default_k
    return build_confounder_dictionary(data.teacher_logits, k, pca_dim=pca_dim, seed=seed)


def dictionary_summary(d: ConfounderDictionary) -> dict:
    return {"k": d.k, "k_requested": d.k_requested, "pca_components": d.pca_components,
            "proportions": d.proportions.tolist(), "prototypes": d.prototypes.tolist()}


@dataclass
class Diagnosis:
    """One method's substitution data and its shift. ``reference`` (the test split, the teacher)
    is None for a diagnosis read back from the run store (``diagnostics.saved``): what the
    pages show needs only the rest."""

    config: DistillConfig
    data: SubstitutionData
    reference: Reference | None
    fid: FIDResult | None
    balance: ClassBalance
    dictionary: ConfounderDictionary
    k_curve: KCurve | None = None
    #: FID of real training images, as many as the substitution data, against the same reference:
    #: the floor that sample count and extractor allow (what "close to the data" looks like)
    fid_real: FIDResult | None = None
    #: the device it was made on (kept when the reference is not)
    device: str | None = None

    def to_dict(self) -> dict:
        info = self.data.info
        return {"method": self.data.method, "kind": self.data.kind, "dataset": info.name,
                "teacher_arch": self.data.teacher_arch, "device": self.device or (
                    str(self.reference.device) if self.reference is not None else None),
                "substitution": self.data.summary(),
                # the teacher's input the data were made at (teachers.input_spec)
                "input": {"image_size": info.image_size, "in_channels": info.in_channels,
                          "mean": list(info.mean), "std": list(info.std)},
                "fid": self.fid.to_dict() if self.fid else None,
                "fid_real_data": self.fid_real.to_dict() if self.fid_real else None,
                "proportions": self.balance.to_dict(info.class_names),
                "dictionary": dictionary_summary(self.dictionary),
                "k_curve": self.k_curve.to_dict() if self.k_curve else None,
                "config": self.config.to_dict()}


def diagnose(cfg: DistillConfig, *, rounds: int = DEFAULT_ROUNDS, k: int | None = None,
             pca_dim: int | None = None, fid: str | None = "auto", inception_weights=None,
             with_k_curve: bool = False, max_reference: int = MAX_REFERENCE,
             progress: Progress = None) -> Diagnosis:
    """Make the substitution data of ``cfg.method`` and measure its shift from the test split.

    ``fid``: "auto" (Inception when its weights are present, else the teacher's features),
    "inception", "teacher" or None (skip FID)."""
    max_reference = check_range("max_reference", max_reference, low=2, high=10**7, integer=True)
    if fid and is_onnx_path(cfg.teacher):  # a black box has no features for FID: say so first
        extractor_ready(fid, ONNX_CAPABILITIES, inception_weights)
    data, reference = collect_substitution_data(cfg, rounds=rounds, progress=progress)
    fid_result = fid_real = None
    if fid:
        ref = reference_subset(reference, max_reference, cfg.seed)
        opts = dict(info=data.info, device=reference.device, teacher=reference.teacher,
                    teacher_arch=data.teacher_arch, extractor=fid,
                    inception_weights=inception_weights, progress=progress)
        fid_result = compute_fid(data.images, ref, **opts)
        if len(reference.train) >= 2:
            real = reference_subset(reference, len(data.images), cfg.seed, split="train")
            fid_real = compute_fid(real, ref, **opts)
    report(progress, 0, 1, "confounder dictionary")
    dictionary = dictionary_for(data, k, pca_dim=pca_dim, seed=cfg.seed)
    report(progress, 1, 1, "confounder dictionary")
    curve = k_curve(data.teacher_logits, pca_dim=pca_dim, seed=cfg.seed, progress=progress) \
        if with_k_curve else None
    return Diagnosis(cfg, data, reference, fid_result, class_balance(data, reference), dictionary,
                     curve, fid_real, device=str(reference.device))
