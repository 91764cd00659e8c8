"""KDCI: knowledge distillation with causal intervention (Wang et al., CVPR 2024).

Stage 1 (``dictionary``): cluster prediction features into a confounder dictionary.
Stage 2 (``intervention``): compensate student logits with the attention-weighted prototypes.
``plugin``: what the distillation loop uses (dictionary + intervention + ablation).
``kcurve``: the K curve and a recommended K (``--k auto``); ``telemetry``: did KDCI act?
See docs/KDCI_IMPLEMENTATION.md for the equations and every choice the paper leaves open.
"""

from kdci_core.kdci.dictionary import (ConfounderDictionary, build_confounder_dictionary,
                                       random_prototypes_like)
from kdci_core.kdci.intervention import ATTENTION_INPUTS, FUSIONS, LAMBDA_MODES, CausalIntervention
from kdci_core.kdci.plugin import ABLATIONS, KDCIPlugin
from kdci_core.kdci.telemetry import INERT_ATTENTION, INERT_COMPENSATION, inert_reason, kdci_telemetry

__all__ = [
    "ABLATIONS", "ATTENTION_INPUTS", "INERT_ATTENTION", "INERT_COMPENSATION", "inert_reason",
    "kdci_telemetry", "FUSIONS", "LAMBDA_MODES", "CausalIntervention",
    "ConfounderDictionary", "KDCIPlugin", "build_confounder_dictionary",
    "random_prototypes_like",
]
