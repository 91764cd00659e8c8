"""KDCI: confounder dictionary, causal intervention, ablations and plugin (hand-computed values)."""

import math

import pytest
import torch
from torch import nn

from kdci_core.errors import InputError
from kdci_core.kdci import (ABLATIONS, CausalIntervention, ConfounderDictionary, KDCIPlugin,
                            build_confounder_dictionary, random_prototypes_like)

# Three well-separated blobs in 4-D; their means and sizes are worked out by hand below.
BLOB_A = [[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]]                          # mean (1/3, 1/3, 0, 0)
BLOB_B = [[100, 100, 0, 0], [101, 100, 0, 0]]                                # mean (100.5, 100, 0, 0)
BLOB_C = [[0, 0, 100, -100], [0, 0, 100, -102], [0, 0, 102, -100], [0, 0, 102, -102]]
MEANS = {"A": [1 / 3, 1 / 3, 0, 0], "B": [100.5, 100, 0, 0], "C": [0, 0, 101, -101]}
SIZES = {"A": 3, "B": 2, "C": 4}


def _blobs():
    x = torch.tensor(BLOB_A + BLOB_B + BLOB_C, dtype=torch.float32)
    names = ["A"] * 3 + ["B"] * 2 + ["C"] * 4
    return x, names


# ---------------------------------------------------------------- dictionary
@pytest.mark.parametrize("pca_dim", [None, 2, 4])
def test_prototypes_are_means_of_original_features(pca_dim):
    x, names = _blobs()
    d = build_confounder_dictionary(x, 3, pca_dim=pca_dim, seed=0)
    assert isinstance(d, ConfounderDictionary)
    assert d.k == 3 and d.k_requested == 3
    assert d.prototypes.shape == (3, 4)             # original dimension, not the PCA one
    assert d.prototypes.dtype == torch.float32 and d.proportions.dtype == torch.float32
    assert d.labels.shape == (9,) and d.labels.dtype == torch.long
    for name in "ABC":
        members = [i for i, n in enumerate(names) if n == name]
        labs = {int(d.labels[i]) for i in members}
        assert len(labs) == 1, "a blob was split"
        lab = labs.pop()
        assert torch.allclose(d.prototypes[lab], torch.tensor(MEANS[name], dtype=torch.float32), atol=1e-5)
        assert d.proportions[lab].item() == pytest.approx(SIZES[name] / 9)
    assert set(d.labels.tolist()) == {0, 1, 2}
    assert d.proportions.sum().item() == pytest.approx(1.0)
    if pca_dim is not None:
        assert d.pca_components == pca_dim


def test_result_is_detached_float32_and_accepts_float64():
    x, _ = _blobs()
    x = x.double().requires_grad_(True)
    d = build_confounder_dictionary(x, 3)
    assert not d.prototypes.requires_grad and not d.proportions.requires_grad
    assert d.prototypes.dtype == torch.float32


def test_empty_clusters_are_dropped():
    x = torch.tensor([[1.0, 2.0]] * 5 + [[7.0, -3.0]])
    d = build_confounder_dictionary(x, 4, seed=0)
    assert d.k == 2 and d.k_requested == 4
    assert not torch.isnan(d.prototypes).any() and not torch.isnan(d.proportions).any()
    assert d.proportions.sum().item() == pytest.approx(1.0)
    assert set(d.labels.tolist()) == {0, 1}
    lab_dup, lab_other = int(d.labels[0]), int(d.labels[5])
    assert lab_dup != lab_other
    assert torch.equal(d.prototypes[lab_dup], torch.tensor([1.0, 2.0]))
    assert torch.equal(d.prototypes[lab_other], torch.tensor([7.0, -3.0]))
    assert d.proportions[lab_dup].item() == pytest.approx(5 / 6)
    assert d.proportions[lab_other].item() == pytest.approx(1 / 6)


def test_all_identical_rows_give_one_cluster():
    d = build_confounder_dictionary(torch.full((6, 3), 2.5), 3)
    assert d.k == 1 and torch.equal(d.prototypes, torch.full((1, 3), 2.5))
    assert d.proportions.tolist() == [1.0]


def test_k_limits():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0], [9.0, 9.0], [-4.0, 2.0], [3.0, -7.0]])
    with pytest.raises(InputError) as exc:
        build_confounder_dictionary(x, 7)
    msg = str(exc.value)
    assert "k" in msg and "7" in msg and "6" in msg and "N=6" in msg
    for bad in (0, -1, 2.5, "3", True, None):
        with pytest.raises(InputError, match="k"):
            build_confounder_dictionary(x, bad)
    d = build_confounder_dictionary(x, 6)                       # k = N: one point per cluster
    assert d.k == 6
    assert torch.allclose(d.proportions, torch.full((6,), 1 / 6))
    assert torch.equal(d.prototypes[d.labels], x)
    one = build_confounder_dictionary(x[:1], 1)                 # N = 1 works
    assert torch.equal(one.prototypes, x[:1]) and one.proportions.tolist() == [1.0]


def test_bad_features_rejected():
    with pytest.raises(InputError, match="finite"):
        build_confounder_dictionary(torch.tensor([[0.0, 1.0], [float("nan"), 2.0]]), 1)
    with pytest.raises(InputError, match="finite"):
        build_confounder_dictionary(torch.tensor([[0.0, float("inf")], [1.0, 2.0]]), 1)
    with pytest.raises(InputError):
        build_confounder_dictionary(torch.zeros(5), 1)
    with pytest.raises(InputError):
        build_confounder_dictionary([[0.0, 1.0]], 1)


def test_pca_defaults_and_choices():
    g = torch.Generator().manual_seed(0)
    d = build_confounder_dictionary(torch.randn(256, 100, generator=g), 8)
    assert 1 <= d.pca_components <= 64
    # Two strong directions (std 10) and three weak ones (std 0.01): 95% needs exactly 2.
    x = torch.cat([10 * torch.randn(300, 2, generator=g), 0.01 * torch.randn(300, 3, generator=g)], 1)
    assert build_confounder_dictionary(x, 4).pca_components == 2
    assert build_confounder_dictionary(x, 4, pca_dim=3).pca_components == 3
    # D == 1: PCA skipped, clustering still works.
    d1 = build_confounder_dictionary(torch.tensor([[0.0], [0.1], [10.0], [10.2]]), 2)
    assert d1.pca_components == 0 and d1.prototypes.shape == (2, 1)
    assert sorted(round(v, 4) for v in d1.prototypes.flatten().tolist()) == [0.05, 10.1]
    # pca_dim larger than N is clamped to min(N, D); outside [1, D] is rejected.
    assert build_confounder_dictionary(torch.randn(3, 10, generator=g), 2,
                                       pca_dim=8).pca_components == 3
    for bad in (0, 6, 1.5):
        with pytest.raises(InputError, match="pca_dim"):
            build_confounder_dictionary(x, 2, pca_dim=bad)


def test_same_seed_same_dictionary():
    x = torch.randn(128, 10, generator=torch.Generator().manual_seed(1))
    a, b = build_confounder_dictionary(x, 16, seed=3), build_confounder_dictionary(x, 16, seed=3)
    assert torch.equal(a.prototypes, b.prototypes) and torch.equal(a.labels, b.labels)


def test_random_prototypes_and_uniform_proportions():
    x, _ = _blobs()
    x[:, 3] = 3.0                                     # constant column: std 0, prototypes = 3
    d = build_confounder_dictionary(x, 3)
    r = random_prototypes_like(d, x, seed=5)
    assert r.prototypes.shape == d.prototypes.shape
    assert torch.equal(r.proportions, d.proportions) and torch.equal(r.labels, d.labels)
    assert not torch.allclose(r.prototypes, d.prototypes)
    assert torch.equal(r.prototypes[:, 3], torch.full((3,), 3.0))
    assert torch.equal(random_prototypes_like(d, x, seed=5).prototypes, r.prototypes)
    assert not torch.equal(random_prototypes_like(d, x, seed=6).prototypes, r.prototypes)
    u = d.with_uniform_proportions()
    assert torch.equal(u.proportions, torch.full((3,), 1 / 3)) and torch.equal(u.prototypes,
                                                                             d.prototypes)


# ---------------------------------------------------------------- intervention
def _zero_attention(m):
    with torch.no_grad():
        m.W_h.weight.zero_()
        m.W_z.weight.zero_()


def test_attention_weights_are_a_distribution():
    torch.manual_seed(0)
    m = CausalIntervention(10, attn_dim=16)
    lam = m.attention_weights(torch.randn(5, 10), torch.randn(7, 10))
    assert lam.shape == (5, 7) and (lam >= 0).all()
    assert torch.allclose(lam.sum(1), torch.ones(5), atol=1e-6)


def test_add_fusion_uniform_attention_by_hand():
    m = CausalIntervention(3, attn_dim=4)
    _zero_attention(m)                                # every score 0 -> lambda = 1/K
    z = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 4.0]])
    p = torch.tensor([0.25, 0.75])
    s = torch.tensor([[1.0, 1.0, 1.0], [0.0, -2.0, 5.0]])
    # E = 1/2 * (0.25 * z1 + 0.75 * z2) = 1/2 * (-0.5, 0.5, 3.75) = (-0.25, 0.25, 1.875)
    expected = torch.tensor([[0.75, 1.25, 2.875], [-0.25, -1.75, 6.875]])
    assert torch.allclose(m(s, z, p), expected, atol=1e-6)


def test_add_fusion_nonuniform_attention_by_hand():
    m = CausalIntervention(2, attn_dim=1)
    a = math.atanh(math.log(3) / 2)                   # 2 * tanh(a) = ln 3
    with torch.no_grad():
        m.W_h.weight.zero_()
        m.W_z.weight.copy_(torch.tensor([[1.0, 0.0]]))
        m.w.weight.fill_(2.0)
    z = torch.tensor([[0.0, 2.0], [a, -4.0]])         # scores (0, ln 3) -> lambda = (1/4, 3/4)
    p = torch.tensor([0.5, 0.5])
    s = torch.tensor([[1.0, 2.0]])
    lam = m.attention_weights(s, z)
    assert torch.allclose(lam, torch.tensor([[0.25, 0.75]]), atol=1e-6)
    # E = 1/4 * 1/2 * (0, 2) + 3/4 * 1/2 * (a, -4) = (0.375 a, -1.25)
    expected = torch.tensor([[1 + 0.375 * a, 0.75]])
    assert torch.allclose(m(s, z, p), expected, atol=1e-6)


def test_add_fusion_matches_explicit_loop():
    torch.manual_seed(1)
    m = CausalIntervention(6, attn_dim=8)
    s, z = torch.randn(4, 6), torch.randn(5, 6)
    p = torch.softmax(torch.randn(5), 0)
    lam = m.attention_weights(s, z)
    expected = s.clone()
    for b in range(4):
        for i in range(5):
            expected[b] += lam[b, i] * p[i] * z[i]
    assert torch.allclose(m(s, z, p), expected, atol=1e-6)
    assert torch.allclose(m.compensation(s, z, p), expected - s, atol=1e-6)


def test_linear_fusion_identity_at_init_then_trains():
    torch.manual_seed(2)
    m = CausalIntervention(5, attn_dim=8, fusion="linear")
    s, z, p = torch.randn(3, 5), torch.randn(4, 5), torch.full((4,), 0.25)
    assert torch.allclose(m(s, z, p), s + m.compensation(s, z, p), atol=1e-6)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    m(s, z, p).pow(2).sum().backward()
    opt.step()
    assert not torch.allclose(m.A, torch.eye(5)) and not torch.allclose(m.B, torch.eye(5))
    assert not torch.allclose(m(s, z, p), s + m.compensation(s, z, p), atol=1e-4)


def test_gradients_reach_attention_and_student_not_prototypes():
    torch.manual_seed(3)
    student = nn.Linear(4, 6)
    m = CausalIntervention(6, attn_dim=8)
    z = torch.randn(5, 6, requires_grad=True)
    p = torch.full((5,), 0.2, requires_grad=True)
    logits = student(torch.randn(3, 4))
    logits.retain_grad()
    m(logits, z, p).logsumexp(1).sum().backward()
    for param in (m.W_h.weight, m.W_z.weight, m.w.weight, student.weight, logits):
        assert param.grad is not None and param.grad.abs().sum() > 0
    assert z.grad is None and p.grad is None


def test_prototype_dim_mapping():
    torch.manual_seed(4)
    m = CausalIntervention(10, attn_dim=8, prototype_dim=7)
    s = torch.randn(3, 10, requires_grad=True)
    out = m(s, torch.randn(5, 7), torch.full((5,), 0.2))
    assert out.shape == (3, 10)
    out.pow(2).sum().backward()
    assert m.mapping.weight.grad is not None and m.mapping.weight.grad.abs().sum() > 0
    with pytest.raises(InputError, match=r"\(5, 10\)"):           # wrong dimension
        m(s, torch.randn(5, 10), torch.full((5,), 0.2))
    same = CausalIntervention(4, attn_dim=2, prototype_dim=4)
    assert torch.equal(same.mapping.weight, torch.eye(4))


def test_random_lambda_mode():
    m = CausalIntervention(4, attn_dim=8, lambda_mode="random")
    s = torch.randn(3, 4, requires_grad=True)
    z, p = torch.randn(6, 4), torch.full((6,), 1 / 6)
    a, b = m.attention_weights(s, z), m.attention_weights(s, z)
    assert a.shape == (3, 6) and (a >= 0).all()
    assert torch.allclose(a.sum(1), torch.ones(3), atol=1e-6)
    assert not torch.allclose(a, b)
    m(s, z, p).sum().backward()
    assert m.W_h.weight.grad is None and m.W_z.weight.grad is None and m.w.weight.grad is None


def test_shape_and_option_errors():
    m = CausalIntervention(4, attn_dim=8)
    with pytest.raises(InputError, match=r"\(B, 4\).*\(3, 5\)"):
        m(torch.randn(3, 5), torch.randn(2, 4), torch.ones(2) / 2)
    with pytest.raises(InputError, match=r"\(2,\).*\(3,\)"):
        m(torch.randn(3, 4), torch.randn(2, 4), torch.ones(3) / 3)
    with pytest.raises(InputError, match="fusion"):
        CausalIntervention(4, fusion="mul")
    with pytest.raises(InputError, match="attn_dim"):
        CausalIntervention(4, attn_dim=0)
    with pytest.raises(InputError, match="attn_dim"):
        CausalIntervention(4, attn_dim=5000)
    with pytest.raises(InputError, match="lambda_mode"):
        CausalIntervention(4, lambda_mode="uniform")


def test_autocast_cpu_bfloat16():
    m = CausalIntervention(5, attn_dim=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(torch.randn(3, 5), torch.randn(4, 5), torch.full((4,), 0.25))
    assert out.shape == (3, 5) and torch.isfinite(out).all()


# ---------------------------------------------------------------- plugin
def test_constants():
    assert ABLATIONS == ("none", "random-lambda", "random-prototypes", "uniform-proportions")


def test_plugin_rebuild_forward_and_errors():
    plugin = KDCIPlugin(10, k=4, attn_dim=16)
    assert plugin.dictionary is None and plugin.rebuild_count == 0
    with pytest.raises(RuntimeError, match="rebuild"):
        plugin(torch.randn(2, 10))
    d = plugin.rebuild(torch.randn(32, 10))
    assert d.k == 4 and plugin.rebuild_count == 1
    assert plugin(torch.randn(3, 10)).shape == (3, 10)
    with pytest.raises(InputError, match="features"):
        plugin.rebuild(torch.randn(32, 7))
    with pytest.raises(InputError, match="k"):
        plugin.rebuild(torch.randn(3, 10))
    with pytest.raises(InputError, match="random-lambda"):
        KDCIPlugin(10, k=4, ablation="nope")
    for bad in ({"k": 0}, {"k": 2.5}, {"k": 4, "attn_dim": 0}, {"k": 4, "fusion": "x"},
                {"k": 4, "pca_dim": 0}):
        with pytest.raises(InputError):
            KDCIPlugin(10, **bad)


def test_plugin_ablations():
    feats = torch.randn(64, 10, generator=torch.Generator().manual_seed(0))
    clustered = build_confounder_dictionary(feats, 8, seed=0)
    assert KDCIPlugin(10, k=8, ablation="random-lambda").intervention.lambda_mode == "random"
    uni = KDCIPlugin(10, k=8, ablation="uniform-proportions").rebuild(feats)
    assert torch.allclose(uni.proportions, torch.full((uni.k,), 1 / uni.k))
    assert torch.equal(uni.prototypes, clustered.prototypes)
    rp = KDCIPlugin(10, k=8, ablation="random-prototypes", seed=0)
    first = rp.rebuild(feats).prototypes.clone()
    assert first.shape == clustered.prototypes.shape
    assert torch.equal(rp.dictionary.proportions, clustered.proportions)
    assert not torch.allclose(first, clustered.prototypes)
    second = rp.rebuild(feats).prototypes
    assert not torch.equal(first, second)             # new noise per rebuild ...
    again = KDCIPlugin(10, k=8, ablation="random-prototypes", seed=0).rebuild(feats)
    assert torch.equal(again.prototypes, first)       # ... reproducible from seed + count


def test_plugin_state_round_trip(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(5)
    src = KDCIPlugin(10, k=6, attn_dim=16, prototype_dim=7)
    src.rebuild(torch.randn(40, 7))
    src.rebuild(torch.randn(50, 7))
    save_file(src.state_dict(), str(tmp_path / "plugin.safetensors"))
    for state in (src.state_dict(), load_file(str(tmp_path / "plugin.safetensors"))):
        dst = KDCIPlugin(10, k=6, attn_dim=16, prototype_dim=7)
        dst.rebuild(torch.randn(9, 7))                # a different K' / N before loading
        dst.load_state_dict(state)
        a, b = src.dictionary, dst.dictionary
        assert torch.equal(a.prototypes, b.prototypes) and torch.equal(a.labels, b.labels)
        assert torch.equal(a.proportions, b.proportions)
        assert (a.k_requested, a.pca_components) == (b.k_requested, b.pca_components)
        assert dst.rebuild_count == 2
        s = torch.randn(3, 10)
        assert torch.equal(src(s), dst(s))
    fresh = KDCIPlugin(10, k=6, attn_dim=16, prototype_dim=7)
    fresh.load_state_dict(src.state_dict())           # never rebuilt before loading
    assert torch.equal(fresh.dictionary.prototypes, src.dictionary.prototypes)
    with pytest.raises(RuntimeError):                 # another feature dimension is refused
        KDCIPlugin(10, k=6, attn_dim=16).load_state_dict(src.state_dict(), strict=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_plugin_cuda():
    plugin = KDCIPlugin(10, k=8, attn_dim=32).cuda()
    d = plugin.rebuild(torch.randn(64, 10))           # CPU features, CUDA plugin
    assert d.prototypes.is_cuda and d.proportions.is_cuda
    s = torch.randn(16, 10, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=torch.float16):
        out = plugin(s)
    assert out.shape == (16, 10) and out.is_cuda and torch.isfinite(out).all()
    out.float().sum().backward()
    assert plugin.intervention.W_h.weight.grad is not None and s.grad is not None
    cd = build_confounder_dictionary(torch.randn(64, 10, device="cuda"), 8)
    assert cd.prototypes.is_cuda and cd.labels.is_cuda
