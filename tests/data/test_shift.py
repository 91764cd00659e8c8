"""The controlled shift: a long tail of a set ratio by true labels, blur and noise, and the plain
KD method that distils on such a pool."""

from __future__ import annotations

import pytest
import torch

from kdci_core.data import load_dataset
from kdci_core.data.shift import degrade, long_tailed_indices
from kdci_core.errors import InputError
from kdci_core.methods import METHODS, MethodContext


def test_long_tail_has_the_ratio_asked_for():
    labels = torch.arange(10).repeat_interleave(100)
    idx = long_tailed_indices(labels, 100.0, seed=0)
    counts = torch.bincount(labels[idx], minlength=10)
    assert counts[0] == 100 and counts[-1] == 1 and (counts[:-1] >= counts[1:]).all()
    assert torch.equal(long_tailed_indices(labels, 1.0, seed=0), torch.arange(1000))
    assert torch.equal(idx, long_tailed_indices(labels, 100.0, seed=0))  # seeded


def test_degrade_blurs_and_adds_noise_in_pixel_space():
    x = torch.zeros(2, 1, 9, 9)
    x[:, :, 4, 4] = 1.0
    blurred = degrade(x, blur=1.0)
    assert blurred[0, 0, 4, 4] < 1.0 and blurred[0, 0, 4, 5] > 0 and torch.allclose(blurred.sum(), x.sum(), atol=1e-2)
    noisy = degrade(torch.full((1, 1, 50, 50), 0.5), noise=0.1, seed=1)
    assert noisy.std().item() == pytest.approx(0.1, rel=0.1) and noisy.min() >= 0 and noisy.max() <= 1


def test_plain_kd_pool_is_the_shifted_split():
    info = load_dataset("digits").info
    teacher = torch.nn.Identity()
    ctx = MethodContext(teacher=teacher, info=info, device=torch.device("cpu"), seed=0, tau=4.0,
                        wild_data="dataset:digits", params={"imbalance": 10.0, "pool_size": 5000,
                                                            "n_select": 5000})
    m = METHODS.get("plain")(ctx)
    m.prepare()
    train = load_dataset("digits").train
    expected = long_tailed_indices(train.labels, 10.0, 0)
    assert len(m.substitution_data()) == len(expected) and m.student_losses(None, None, None) == {}
    with pytest.raises(InputError, match="dataset:NAME"):
        bad = METHODS.get("plain")(MethodContext(teacher=teacher, info=info, device=torch.device("cpu"),
                                                 seed=0, tau=4.0, params={"blur": 1.0}))
        bad.prepare()
