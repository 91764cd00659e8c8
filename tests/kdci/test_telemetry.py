"""KDCI's telemetry on hand-made plug-ins: a uniform attention, a collapsed one, a known
compensation ratio, and the inert rule; and the attention-input options."""

from __future__ import annotations

import math

import pytest
import torch

from kdci_core.kdci import KDCIPlugin, inert_reason, kdci_telemetry
from kdci_core.kdci.telemetry import compensated_predictions, normalised_entropy

Z = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])   # prototype 0: class 0, prototype 1: class 1
P = torch.tensor([0.75, 0.25])


def _plugin(attention: str) -> KDCIPlugin:
    plugin = KDCIPlugin(3, k=2, attn_dim=4)
    plugin.dict_prototypes, plugin.dict_proportions = Z.clone(), P.clone()
    plugin.dict_labels = torch.tensor([0, 0, 0, 1])
    plugin.dict_meta = torch.tensor([2, 0])
    att = plugin.intervention
    with torch.no_grad():
        for layer in (att.W_h, att.W_z, att.w):
            layer.weight.zero_()
        if attention == "collapsed":  # e_i = 50 tanh(z_i0): prototype 0 wins by far for every input
            att.W_z.weight[0, 0] = 1.0
            att.w.weight[0, 0] = 50.0
    return plugin


def test_uniform_attention_and_a_known_compensation_ratio():
    plugin = _plugin("uniform")
    s = torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, -2.0]])
    t = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    tel = kdci_telemetry(plugin, s, t)
    # E_z = sum_i 0.5 P_i z_i = 0.5 (0.75 (4,0,0) + 0.25 (0,4,0)) = (1.5, 0.5, 0); centred norm:
    e = torch.tensor([1.5, 0.5, 0.0])
    ce = (e - e.mean()).norm()
    ratio = torch.stack([ce / (row - row.mean()).norm() for row in s]).mean()
    assert tel["kdci_compensation"] == pytest.approx(ratio.item(), rel=1e-5)
    assert tel["kdci_attention_entropy"] == pytest.approx(1.0, abs=1e-6)
    assert tel["kdci_top_attention"] == pytest.approx(0.5, abs=1e-6)
    assert tel["kdci_pz_entropy"] == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2), rel=1e-5)
    assert tel["kdci_images_per_cluster"] == 2.0 and tel["kdci_smallest_cluster"] == 1
    assert inert_reason(tel) is None


def test_collapsed_attention_is_flagged_inert():
    plugin = _plugin("collapsed")
    s = torch.randn(16, 3) * 3
    t = torch.zeros(16, 3)
    t[:, 1] = 5.0  # the teacher says class 1 everywhere; the chosen prototype is class 0's
    tel = kdci_telemetry(plugin, s, t)
    assert tel["kdci_prototypes_used"] == 1 and tel["kdci_top_attention"] > 0.99
    assert tel["kdci_attention_entropy"] < 0.01 and tel["kdci_prototype_agreement"] == 0.0
    assert "one prototype takes" in inert_reason(tel)


def test_a_tiny_compensation_is_flagged_inert():
    tel = {"kdci_compensation": 0.01, "kdci_top_attention": 0.3}
    assert "1.0% of the logits' spread" in inert_reason(tel)
    assert inert_reason({"kdci_compensation": 0.2, "kdci_top_attention": 0.5}) is None


def test_normalised_entropy_and_compensated_predictions():
    assert normalised_entropy(torch.tensor([0.25] * 4)).item() == pytest.approx(1.0)
    assert normalised_entropy(torch.tensor([1.0, 0.0])).item() == pytest.approx(0.0, abs=1e-6)
    plugin = _plugin("uniform")
    s = torch.zeros(1000, 3)  # the compensation alone decides: class 0 (1.5 > 0.5 > 0)
    assert (compensated_predictions(plugin, s, chunk=300) == 0).all()


@pytest.mark.parametrize("attn_input", ["raw", "tau", "layernorm"])
def test_attention_input_options(attn_input):
    torch.manual_seed(0)
    plugin = KDCIPlugin(3, k=2, attn_dim=8, attn_input=attn_input, tau=4.0)
    plugin.rebuild(torch.randn(20, 3) * 5)
    att = plugin.intervention
    s = torch.randn(5, 3) * 10
    seen = {}

    def keep(module, inputs, output):
        seen.setdefault("h", inputs[0].clone())
    att.W_h.register_forward_hook(keep)
    plugin(s)
    expected = {"raw": s, "tau": s / 4.0, "layernorm": torch.nn.functional.layer_norm(s, (3,))}
    assert torch.allclose(seen["h"], expected[attn_input], atol=1e-5)


def test_init_gain_scales_the_default_initialisation():
    torch.manual_seed(1)
    a = KDCIPlugin(3, k=2, attn_dim=8)
    torch.manual_seed(1)
    b = KDCIPlugin(3, k=2, attn_dim=8, attn_init_gain=0.1)
    assert torch.allclose(b.intervention.W_h.weight, 0.1 * a.intervention.W_h.weight)


def test_k_auto_takes_the_k_curves_recommendation_and_keeps_it():
    from kdci_core.kdci.kcurve import k_curve

    torch.manual_seed(0)
    blobs = torch.cat([torch.randn(30, 4) + 10 * i for i in range(4)])
    plugin = KDCIPlugin(4, k="auto", attn_dim=8)
    plugin.rebuild(blobs)
    assert plugin.k == k_curve(blobs, seed=0).recommended_k and plugin.dictionary.k <= plugin.k
    chosen = plugin.k
    plugin.rebuild(torch.randn(50, 4))  # a later dictionary keeps the chosen K
    assert plugin.k == chosen and plugin.dictionary.k_requested == chosen
    restored = KDCIPlugin(4, k="auto", attn_dim=8)
    restored.load_state_dict(plugin.state_dict())
    assert restored.k == chosen  # a resume keeps it
