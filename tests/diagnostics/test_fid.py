"""FID diagnostics: Frechet distance, the no-download Inception path and the teacher fallback."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from kdci_core.data import load_dataset
from kdci_core.diagnostics.fid import (
    FIDResult,
    InceptionExtractor,
    TeacherExtractor,
    build_fid_inception,
    compute_fid,
    frechet_distance,
    inception_weights_path,
    make_extractor,
    to_inception_input,
)
from kdci_core.errors import InputError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """A torch hub directory without pytorch-fid's weights, whatever this machine has cached."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_teacher_fid_separates_real_halves_from_noise(builtin, digits, empty_hub):
    info, test = digits.info, digits.test.images
    torch.manual_seed(0)
    perm = torch.randperm(len(test))
    first, second = test[perm[:180]], test[perm[180:]]
    noise = info.normalize(torch.rand(180, *test.shape[1:]))
    calls = []
    halves = compute_fid(first, second, info=info, device="cpu", teacher=builtin, batch_size=64,
                         progress=lambda d, t, desc: calls.append((d, t)))
    vs_noise = compute_fid(noise, second, info=info, device="cpu", teacher=builtin)
    assert halves.extractor_kind == "teacher" and "lenet5" in halves.extractor_name
    assert halves.feature_dim == builtin.model.feature_dim
    assert (halves.n_substitution, halves.n_reference) == (180, 180)
    assert halves.warning is None  # 180 samples > 84 dimensions
    assert 0 <= halves.value and vs_noise.value > 5 * halves.value
    assert calls[-1] == (360, 360) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_frechet_distance_identical_shifted_and_invalid():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8))
    value, warning = frechet_distance(a, a)
    assert abs(value) < 1e-6 and warning is None
    shifted, _ = frechet_distance(a, a + 3.0)  # same covariance: FID = |mean shift|^2 = 8 * 9
    assert shifted == pytest.approx(72.0, rel=1e-6)
    with pytest.raises(InputError, match="at least 2 samples"):
        frechet_distance(a[:1], a)
    with pytest.raises(InputError, match="same D"):
        frechet_distance(a, a[:, :4])


def test_frechet_warns_only_when_fewer_samples_than_dimensions():
    rng = np.random.default_rng(1)
    _, warning = frechet_distance(rng.normal(size=(10, 32)), rng.normal(size=(12, 32)))
    assert warning is not None and "10" in warning and "12" in warning and "32-d" in warning
    _, warning = frechet_distance(rng.normal(size=(400, 4)), rng.normal(size=(400, 4)))
    assert warning is None


def test_auto_falls_back_to_teacher_without_weights(builtin, empty_hub):
    assert inception_weights_path() is None
    ext = make_extractor("auto", teacher=builtin.model, teacher_arch="lenet5")
    assert isinstance(ext, TeacherExtractor) and ext.kind == "teacher"
    assert ext.name == f"teacher penultimate features (lenet5, {builtin.model.feature_dim}-d)"
    assert make_extractor("auto", teacher=builtin).arch == builtin.arch  # a TeacherBundle works too


def test_inception_requires_weights_and_teacher_requires_teacher(empty_hub, tmp_path):
    with pytest.raises(InputError, match="inception_weights") as err:
        make_extractor("inception")
    assert str(empty_hub / "checkpoints") in str(err.value)
    with pytest.raises(InputError, match="existing file"):
        make_extractor("inception", inception_weights=tmp_path / "missing.pth")
    with pytest.raises(InputError, match="teacher"):
        make_extractor("teacher")
    with pytest.raises(InputError, match="auto, inception, teacher"):
        make_extractor("clip")


def test_auto_prefers_cached_inception_weights(empty_hub, builtin):
    from pytorch_fid.inception import FID_WEIGHTS_URL

    cached = empty_hub / "checkpoints" / FID_WEIGHTS_URL.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"placeholder")  # found, not read: the network is built lazily
    assert inception_weights_path() == cached
    ext = make_extractor("auto", teacher=builtin.model)
    assert isinstance(ext, InceptionExtractor) and ext.dim == 2048 and ext.weights == cached


def test_grey_images_become_rgb_in_unit_range(digits):
    info, x = digits.info, digits.test.images[:5]
    rgb = to_inception_input(x, info)
    assert rgb.shape == (5, 3, 8, 8)
    assert torch.equal(rgb[:, 0], rgb[:, 1]) and torch.equal(rgb[:, 1], rgb[:, 2])
    assert torch.allclose(rgb[:, :1], info.denormalize(x.clone()))
    assert rgb.min() >= 0 and rgb.max() <= 1
    with pytest.raises(InputError, match="1 \\(greyscale\\) or 3 \\(RGB\\)"):
        to_inception_input(torch.zeros(2, 2, 8, 8), info)


class _StandIn(nn.Module):
    """Mimics InceptionV3([3]): a list with one B x D x 1 x 1 map; records what it was given."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x)
        return [torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)[:, :, None, None]]


def test_inception_extractor_feeds_rgb_unit_batches(digits):
    net = _StandIn()
    ext = InceptionExtractor(network=net)
    ext.max_batch = 4
    feats = ext.features(digits.test.images[:10], digits.info, device="cpu", batch_size=256)
    assert feats.shape == (10, 6) and feats.dtype == np.float64
    assert [len(x) for x in net.seen] == [4, 4, 2]
    assert all(x.shape[1] == 3 and 0 <= x.min() and x.max() <= 1 for x in net.seen)


def test_weights_loaded_from_local_file_never_downloaded(tmp_path):
    import pytorch_fid.inception as pfi

    original = pfi.load_state_dict_from_url
    bad = tmp_path / "not-inception.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(InputError, match="not the pytorch-fid Inception checkpoint"):
        build_fid_inception(bad)  # our loader ran (strict load then failed); no URL fetch
    assert pfi.load_state_dict_from_url is original
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        build_fid_inception(garbage)
    assert pfi.load_state_dict_from_url is original


@pytest.mark.skipif(inception_weights_path() is None, reason="pytorch-fid weights not cached here")
def test_real_inception_if_cached(digits):
    ext = make_extractor("inception")
    feats = ext.features(digits.test.images[:3], digits.info, device="cpu")
    assert feats.shape == (3, 2048)


def test_result_label_dict_and_shape_checks(builtin, digits, empty_hub):
    r = FIDResult(value=123.44, extractor_kind="teacher", extractor_name="teacher penultimate "
                  "features (lenet5, 84-d)", feature_dim=84, n_substitution=256, n_reference=360)
    assert r.label() == "FID 123.4 (teacher penultimate features (lenet5, 84-d); 256 vs 360 samples)"
    assert json.loads(json.dumps(r.to_dict()))["value"] == 123.44
    x = digits.test.images
    with pytest.raises(InputError, match="substitution"):
        compute_fid(x[:, :, :4], x, info=digits.info, device="cpu", teacher=builtin)
    with pytest.raises(InputError, match="N x C x H x W"):
        compute_fid(x[0], x, info=digits.info, device="cpu", teacher=builtin)
