"""Class-proportion diagnostics: shares, imbalance numbers and per-round proportions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from kdci_core.diagnostics.proportions import (
    class_proportions,
    imbalance,
    proportions_by_round,
)
from kdci_core.errors import InputError


def test_proportions_from_labels_sum_to_one():
    p = class_proportions(torch.tensor([0, 1, 1, 3, 3, 3]), 4)
    assert p.dtype == np.float64 and p.sum() == pytest.approx(1.0)
    assert np.allclose(p, [1 / 6, 2 / 6, 0, 3 / 6])


def test_proportions_from_logits_use_argmax():
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 3.0], [0.0, 0.0, 9.0]])
    assert np.allclose(class_proportions(logits, 3), [0.25, 0.25, 0.5])
    assert np.allclose(class_proportions(logits.numpy(), 3), [0.25, 0.25, 0.5])


@pytest.mark.parametrize("bad, match", [
    ([], "at least one"), ([0, 3], r"\[0, 3\)"), ([-1, 0], "outside"),
    (np.zeros((2, 4)), "N x 3"), ([0.5, 1.0], "integer"),
])
def test_bad_labels_raise(bad, match):
    with pytest.raises(InputError, match=match):
        class_proportions(bad, 3)


def test_uniform_is_perfectly_balanced():
    imb = imbalance(np.full(10, 0.1))
    assert imb.normalised_entropy == pytest.approx(1.0)
    assert imb.kl_to_uniform == pytest.approx(0.0, abs=1e-12)
    assert imb.max_min_ratio == pytest.approx(1.0) and imb.empty_classes == 0


def test_empty_class_gives_infinite_ratio_and_json_null():
    imb = imbalance([0.5, 0.5, 0.0])
    assert imb.empty_classes == 1 and imb.max_min_ratio == math.inf
    assert imb.normalised_entropy == pytest.approx(math.log(2) / math.log(3))
    assert imb.kl_to_uniform == pytest.approx(math.log(3) - math.log(2))
    assert imb.dominant_share == 0.5 and imb.dominant_class in (0, 1)
    d = imb.to_dict()
    assert d["max_min_ratio"] is None and json.loads(json.dumps(d)) == d


def test_skewed_known_numbers():
    imb = imbalance([0.7, 0.2, 0.1])
    h = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    assert imb.normalised_entropy == pytest.approx(h / math.log(3))
    assert imb.max_min_ratio == pytest.approx(7.0)
    assert imb.dominant_class == 0 and imb.dominant_share == pytest.approx(0.7)
    assert imb.to_dict()["max_min_ratio"] == pytest.approx(7.0)
    with pytest.raises(InputError, match="proportions"):
        imbalance([0.5, -0.1])


def test_proportions_by_round():
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 1])
    rounds = torch.tensor([0, 0, 0, 2, 2, 2, 2])
    per = proportions_by_round(labels, rounds, 3)
    assert len(per) == 3
    assert np.allclose(per[0], [2 / 3, 1 / 3, 0])
    assert np.allclose(per[1], [0, 0, 0])  # a round that made no image
    assert np.allclose(per[2], [0, 0.25, 0.75])
    with pytest.raises(InputError, match="rounds"):
        proportions_by_round(labels, rounds[:3], 3)
