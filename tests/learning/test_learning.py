"""Does the student learn, and does each correction act? Each test here fails when the part it
names is broken (the KD term zeroed, a correction skipped, an ablation ignored, KDCI's fusion
dropped): ``tools/mutations.py`` applies those faults one by one and checks that a test catches
each (docs/TESTING.md).

Budgets and thresholds come from the embedded default (the built-in digits teacher, 98.9%; 10
classes, chance 10%), KDCI off, measured over seeds 0-2 on the 2-core CPU VM (docs/TESTING.md):
each threshold sits well under the lowest of the three seeds and far above chance. The tests run
seed 0, which reproduces exactly on the same device.
"""

from __future__ import annotations

import math

import pytest
import torch

from kdci_core.distill import Callback, DistillConfig, Distiller
from kdci_core.distill import loop as loop_module

#: method -> (epochs x steps, threshold %): seeds 0-2 reached deepinv 47.8-58.9, dafl 33.9-38.3,
#: fast 27.8-52.8, cmi 43.6-49.7, mosaickd 26.4-38.9, dfnd 26.7-35.3 (4 x 50 steps each)
LEARNS = {"deepinv": ((4, 50), 30.0), "dafl": ((4, 50), 22.0), "fast": ((4, 50), 20.0),
          "cmi": ((4, 50), 30.0), "mosaickd": ((4, 50), 18.0), "dfnd": ((4, 50), 20.0)}
CHANCE = 10.0


@pytest.mark.parametrize("method", sorted(LEARNS))
def test_every_method_learns_on_the_embedded_default(builtin, method):
    (epochs, steps), threshold = LEARNS[method]
    res = Distiller(DistillConfig(method=method, kdci=False, epochs=epochs, steps_per_epoch=steps,
                                  seed=0)).fit()
    acc = res.student_accuracy
    assert acc >= threshold, (f"{method}: the student reached {acc:.2f}% after {epochs} x {steps} "
                              f"steps (chance {CHANCE:.0f}%, threshold {threshold:.0f}%)")


class _Batches(Callback):
    """Records the teacher's pseudo-labels of every batch the student trains on."""

    def __init__(self):
        self.labels = []

    def on_fit_start(self, distiller):
        inner = distiller.sample_batch

        def sample_batch():
            x = inner()
            with torch.no_grad():
                self.labels.append(distiller.teacher.model(x).argmax(1).cpu())
            return x
        distiller.sample_batch = sample_batch


def _skewed_plain(correction: str, **overrides) -> DistillConfig:
    """Plain KD on digits' own training images subsampled long-tailed (largest / smallest class
    100): the substitution data's classes are skewed by construction."""
    params = {"pool_size": 2000, "n_select": 2000, "imbalance": 100.0}
    return DistillConfig(method="plain", kdci=False, wild_data="dataset:digits", correction=correction,
                         epochs=1, steps_per_epoch=20, seed=0, method_params=params, **overrides)


def _entropy(labels: torch.Tensor, classes: int = 10) -> float:
    p = torch.bincount(labels, minlength=classes).double() / len(labels)
    return float(-(p[p > 0] * p[p > 0].log()).sum())


def test_balanced_makes_the_drawn_batches_flatter_than_none(builtin):
    shares = {}
    for correction in ("none", "balanced"):
        rec = _Batches()
        Distiller(_skewed_plain(correction)).fit(callbacks=[rec])
        shares[correction] = torch.cat(rec.labels)
    none, balanced = _entropy(shares["none"]), _entropy(shares["balanced"])
    # the pool's pseudo-labels are skewed (entropy well under log 10 = 2.30); balanced draws every
    # present class about equally often
    assert none < 1.9 and balanced > 2.15 and balanced - none > 0.3, (none, balanced)


def test_reweight_weights_reach_the_kd_loss_as_specified(builtin, monkeypatch):
    seen = []
    original = loop_module.kd_loss

    def kd_loss(s, t, tau, weights=None):
        seen.append((t.detach().argmax(1).cpu(), None if weights is None else weights.detach().cpu()))
        return original(s, t, tau, weights=weights)
    monkeypatch.setattr(loop_module, "kd_loss", kd_loss)
    Distiller(_skewed_plain("reweight")).fit()
    assert seen and all(w is not None for _, w in seen), "the KD loss never got the weights"
    shares = None
    for labels, w in seen:  # the specification, replayed: 1 / EMA share of the pseudo-class
        batch = torch.bincount(labels, minlength=10).float() / len(labels)
        shares = batch if shares is None else 0.9 * shares + 0.1 * batch
        expected = 1.0 / shares.clamp_min(1e-6)[labels]
        assert torch.allclose(w, expected / expected.mean(), rtol=1e-4)
    last_labels, last_w = seen[-1]
    assert last_w.max() / last_w.min() > 3  # a skewed pool: rare classes weigh several times more


class _SHat(Callback):
    """Records, for each student step, the raw student logits and the logits the KD loss saw."""

    def __init__(self, monkeypatch):
        self.raw, self.seen = [], []
        original = loop_module.kd_loss

        def kd_loss(s, t, tau, weights=None):
            self.seen.append(s.detach().clone())
            return original(s, t, tau, weights=weights)
        monkeypatch.setattr(loop_module, "kd_loss", kd_loss)

    def on_fit_start(self, distiller):
        inner = distiller.student_forward

        def forward(x):
            out = inner(x)
            self.raw.append(out.detach().clone())
            return out
        distiller.student_forward = forward


def _kdci_run(monkeypatch, kdci: bool, ablation: str = "none", steps: int = 10):
    rec = _SHat(monkeypatch)
    d = Distiller(DistillConfig(method="deepinv", kdci=kdci, ablation=ablation, k=8, epochs=1,
                                steps_per_epoch=steps, seed=0,
                                method_params={"g_steps": 5, "synth_every": 5, "synth_batch": 32}))
    d.fit(callbacks=[rec])
    return d, rec


def test_kdci_on_changes_the_student_logits_in_the_loss_and_off_does_not(builtin, monkeypatch):
    _, off = _kdci_run(monkeypatch, kdci=False)
    assert all(torch.equal(r, s) for r, s in zip(off.raw, off.seen))
    d, on = _kdci_run(monkeypatch, kdci=True)
    assert len(on.seen) == len(on.raw) == 10
    diffs = [float((s - r).abs().max()) for r, s in zip(on.raw, on.seen)]
    assert min(diffs) > 1e-4, diffs  # every step's KD loss saw compensated logits
    # and what it saw is the plugin's s + E_z of the raw logits (the plugin has taken one more
    # optimiser step since, hence the tolerance: a tenth of the compensation itself)
    with torch.no_grad():
        gap = float((d.plugin(on.raw[-1]) - on.seen[-1]).abs().max())
    assert gap < 0.1 * diffs[-1], (gap, diffs[-1])


def test_uniform_proportions_ablation_replaces_p_z_by_uniform(builtin, monkeypatch):
    full, _ = _kdci_run(monkeypatch, kdci=True, steps=5)
    abl, _ = _kdci_run(monkeypatch, kdci=True, ablation="uniform-proportions", steps=5)
    p_full, p_abl = full.plugin.dict_proportions, abl.plugin.dict_proportions
    assert torch.allclose(p_abl, torch.full_like(p_abl, 1.0 / len(p_abl)))
    assert float(p_full.max() - p_full.min()) > 0.02  # the clustering's own shares are not uniform


class _LastSubstitution(Callback):
    def __init__(self):
        self.images = None

    def on_substitution(self, step, images):
        self.images = images


def test_random_prototypes_ablation_replaces_the_cluster_means(builtin):
    for ablation, means in (("none", True), ("random-prototypes", False)):
        rec = _LastSubstitution()
        d = Distiller(DistillConfig(method="deepinv", kdci=True, ablation=ablation, k=8, epochs=1,
                                    steps_per_epoch=5, seed=0,
                                    method_params={"g_steps": 5, "synth_every": 5, "synth_batch": 32}))
        d.fit(callbacks=[rec])
        with torch.no_grad():
            logits = d.dictionary_model(rec.images.to(d.device)).float()
        labels = d.plugin.dict_labels
        cluster_means = torch.stack([logits[labels == i].mean(0) for i in range(len(d.plugin.dict_proportions))])
        close = torch.allclose(d.plugin.dict_prototypes, cluster_means, atol=1e-3)
        assert close is means, ablation


def test_random_lambda_ablation_replaces_the_attention(builtin, monkeypatch):
    for ablation, fixed in (("none", True), ("random-lambda", False)):
        d, rec = _kdci_run(monkeypatch, kdci=True, ablation=ablation, steps=3)
        s = rec.raw[-1]
        with torch.no_grad():
            a = d.plugin.intervention.attention_weights(s, d.plugin.dict_prototypes)
            b = d.plugin.intervention.attention_weights(s, d.plugin.dict_prototypes)
            c = d.plugin.intervention.attention_weights(s.roll(1, 0), d.plugin.dict_prototypes)
        assert torch.equal(a, b) is fixed, ablation  # learned attention: a function of the logits
        if fixed:
            assert torch.allclose(c, a.roll(1, 0))
        assert math.isclose(float(a.sum(1).mean()), 1.0, rel_tol=1e-5)
