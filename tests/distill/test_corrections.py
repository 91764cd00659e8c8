"""Data-level shift corrections: ``balanced`` draws every pseudo-class equally often (within
sampling noise), ``reweight`` weights average 1 and undo a class skew, and a digits run with each
correction records it (and KDCI's telemetry when KDCI is on)."""

from __future__ import annotations

import pytest
import torch

from kdci_core.distill import DistillConfig
from kdci_core.distill.corrections import BalancedResampler, ClassReweighter
from kdci_core.methods.losses import kd_loss
from kdci_core.runs import run_inline
from tests.helpers import tiny_config


def test_balanced_draws_each_present_class_equally_often():
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)  # 90 / 9 / 1 percent
    picks = BalancedResampler(3, gen).indices(labels, 30_000)
    shares = torch.bincount(labels[picks], minlength=3).float() / 30_000
    assert torch.allclose(shares, torch.full((3,), 1 / 3), atol=0.015)  # 3 sigma of a binomial
    assert set(picks[labels[picks] == 2].tolist()) == {99}


def test_balanced_resampler_labels_candidates_with_the_teacher():
    gen = torch.Generator().manual_seed(1)
    pool = torch.cat([torch.zeros(95, 2), torch.ones(5, 2)])  # 95% class 0

    class Teacher(torch.nn.Module):
        def forward(self, x):
            return torch.stack([1 - x[:, 0], x[:, 0]], 1)

    def sample(n):
        return pool[torch.randint(0, 100, (n,), generator=gen)]
    batch = BalancedResampler(2, gen)(sample, Teacher(), 4000)
    assert batch.shape == (4000, 2) and abs(batch[:, 0].mean().item() - 0.5) < 0.05


def test_reweight_weights_average_one_and_undo_a_skew():
    rw = ClassReweighter(3, momentum=0.0)  # momentum 0: the batch's own shares
    t = torch.zeros(10, 3)
    t[:8, 0], t[8:9, 1], t[9:, 2] = 5.0, 5.0, 5.0
    w = rw(t)
    assert w.mean().item() == pytest.approx(1.0)
    assert w[0].item() * 8 == pytest.approx(w[8].item() * 1) == pytest.approx(w[9].item())  # equal mass
    s = torch.randn(10, 3)
    assert kd_loss(s, t, 4.0, weights=torch.ones(10)).item() == pytest.approx(kd_loss(s, t, 4.0).item(), rel=1e-6)
    ema = ClassReweighter(3, momentum=0.5)
    ema(t)
    ema(torch.eye(3).repeat(4, 1)[:10] * 5)
    assert torch.allclose(ema.shares.sum(), torch.tensor(1.0))


@pytest.mark.parametrize("correction", ["balanced", "reweight"])
@pytest.mark.parametrize("method", ["deepinv", "dfnd"])
def test_a_digits_run_with_each_correction_records_it(builtin, correction, method):
    res = run_inline(tiny_config(method=method, kdci=True, k=4, correction=correction)).to_json()
    assert res["config"]["correction"] == correction and len(res["history"]) == 2
    if correction == "balanced" and method == "dfnd":
        assert res["config"]["method_params"]["balanced"] is True  # its balanced selection too
    h = res["history"][-1]
    assert {"kdci_compensation", "kdci_attention_entropy", "kdci_prototypes_used",
            "compensated_accuracy", "kdci_inert"} <= set(h)
    assert 0 <= h["kdci_attention_entropy"] <= 1 and 1 <= h["kdci_prototypes_used"] <= 4
    assert res["kdci_telemetry"]["kdci_compensation"] == pytest.approx(h["kdci_compensation"], rel=1e-4)


def test_kdci_off_records_no_telemetry_and_bad_choices_are_rejected(builtin):
    res = run_inline(tiny_config(kdci=False)).to_json()
    assert "kdci_compensation" not in res["history"][-1] and res["kdci_telemetry"] is None
    from kdci_core.errors import InputError
    with pytest.raises(InputError, match="--correction"):
        DistillConfig(correction="smote").resolve()
    with pytest.raises(InputError, match="--attn-input"):
        DistillConfig(attn_input="sqrt").resolve()
