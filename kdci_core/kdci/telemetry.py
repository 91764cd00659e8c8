"""Did KDCI act? Numbers about the compensation and the attention of a KDCI plug-in, measured on
a fixed probe batch, that tell a user whether the correction changed anything in a run.

- ``compensation``: ||c - mean_c c|| / ||s - mean_c s||, batch mean, where c = s_hat - s is what
  KDCI adds to the student's logits s (= E_z for the paper's additive fusion), both centred over
  the classes (a constant offset changes no softmax); 0.1 means the prior moves the logits by a
  tenth of their own spread;
- ``attention_entropy``: the entropy of the attention lambda over log K' (batch mean; 1 = uniform
  over the prototypes, 0 = one prototype);
- ``prototypes_used``: how many prototypes are the argmax of lambda for some probe input;
- ``prototype_agreement``: how often the argmax prototype's class (the argmax of its logits) is
  the teacher's class for that input;
- ``top_attention``: the largest mean attention any one prototype gets over the probe batch;
- ``pz_entropy``: the entropy of P(z) over log K' (1 = clusters of equal size);
- ``images_per_cluster`` and ``smallest_cluster``: the dictionary's N / K' and its smallest n_i.

The inert rule (:func:`inert_reason`): KDCI is inert in a run when its compensation is under
``INERT_COMPENSATION`` (2%) of the logits' spread, or when one prototype takes at least
``INERT_ATTENTION`` (90%) of the attention, so that it adds a near-constant offset.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

INERT_COMPENSATION = 0.02
INERT_ATTENTION = 0.9
KEYS = ("kdci_compensation", "kdci_attention_entropy", "kdci_prototypes_used",
        "kdci_prototype_agreement", "kdci_top_attention", "kdci_pz_entropy",
        "kdci_images_per_cluster", "kdci_smallest_cluster")


def normalised_entropy(p: Tensor) -> Tensor:
    """Entropy of each row of ``p`` (non-negative, rows sum to 1) over log(row length); 0 for a
    single entry."""
    n = p.shape[-1]
    if n < 2:
        return torch.zeros(p.shape[:-1], device=p.device)
    h = -(p * p.clamp_min(1e-12).log()).sum(-1)
    return h / math.log(n)


def centred_norm(x: Tensor) -> Tensor:
    """Per-row L2 norm after removing the row mean (the part of logits a softmax sees)."""
    return (x - x.mean(1, keepdim=True)).norm(dim=1)


@torch.no_grad()
def kdci_telemetry(plugin, student_logits: Tensor, teacher_logits: Tensor) -> dict:
    """The numbers of the module docstring for ``plugin`` (a KDCIPlugin with a dictionary) on a
    probe batch's raw student logits and teacher logits (``B x C`` each)."""
    d = plugin.dictionary
    s = student_logits.float()
    lam = plugin.intervention.attention_weights(s, d.prototypes).float()     # B x K'
    compensation = plugin(s).float() - s
    ratio = (centred_norm(compensation) / centred_norm(s).clamp_min(1e-12)).mean()
    z = plugin.intervention.mapped_prototypes(d.prototypes).float()          # K' x C
    top = lam.argmax(1)
    counts = torch.bincount(d.labels.long(), minlength=d.k) if len(d.labels) else torch.zeros(d.k)
    return {
        "kdci_compensation": float(ratio),
        "kdci_attention_entropy": float(normalised_entropy(lam).mean()),
        "kdci_prototypes_used": int(top.unique().numel()),
        "kdci_prototype_agreement": float((z.argmax(1)[top] == teacher_logits.argmax(1)).float().mean()),
        "kdci_top_attention": float(lam.mean(0).max()),
        "kdci_pz_entropy": float(normalised_entropy(d.proportions.float())),
        "kdci_images_per_cluster": float(len(d.labels) / max(d.k, 1)),
        "kdci_smallest_cluster": int(counts[counts > 0].min()) if (counts > 0).any() else 0,
    }


def inert_reason(telemetry: dict) -> str | None:
    """Why KDCI did not act in a run with these numbers (None: it acted), by the module's rule."""
    if telemetry.get("kdci_compensation") is None:
        return None
    reasons = []
    if telemetry["kdci_compensation"] < INERT_COMPENSATION:
        reasons.append(f"its compensation is {100 * telemetry['kdci_compensation']:.1f}% of the "
                       f"logits' spread (under {100 * INERT_COMPENSATION:.0f}%)")
    if telemetry["kdci_top_attention"] >= INERT_ATTENTION:
        reasons.append(f"one prototype takes {100 * telemetry['kdci_top_attention']:.0f}% of the "
                       f"attention (at least {100 * INERT_ATTENTION:.0f}%)")
    return "; ".join(reasons) or None


@torch.no_grad()
def compensated_predictions(plugin, student_logits: Tensor, chunk: int = 512) -> Tensor:
    """argmax of the compensated logits, in chunks (the attention is B x K' x d_m)."""
    return torch.cat([plugin(student_logits[i:i + chunk]).argmax(1)
                      for i in range(0, len(student_logits), chunk)])
