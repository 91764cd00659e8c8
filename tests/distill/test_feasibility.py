"""Settings valid alone but not together are refused by ``DistillConfig.validate`` (so by the dry
run, ``--detach``, the Runs page and the worker alike) before a run exists: K above the samples a
dictionary is built from, and a synthesis batch or batch size whose step cannot fit in memory."""

from __future__ import annotations

import re

import pytest

from kdci_core.distill import DistillConfig
from kdci_core.distill import memory
from kdci_core.errors import InputError
from kdci_core.methods import METHODS

GIB = 2**30


@pytest.fixture
def free(monkeypatch):
    """Set the memory this 'machine' has free (bytes) for the test's checks."""
    def set_free(n: float) -> None:
        monkeypatch.setattr(memory, "free_memory", lambda device: (int(n), "free (test)"))
    set_free(16 * GIB)
    return set_free


def test_k_above_the_synthetic_batch_is_refused(free):
    with pytest.raises(InputError, match=r"^--k 65: K must not exceed the 64 images of each synthetic "
                                         r"mini-batch KDCI's dictionary is built from "
                                         r"\(deepinv\.synth_batch 64\); give --k 64 or less"):
        DistillConfig(method="deepinv", k=65).resolve()
    DistillConfig(method="deepinv", k=64).resolve()
    DistillConfig(method="deepinv", k=65, kdci=False).resolve()  # no dictionary, no K
    DistillConfig(method="deepinv", k="auto", method_params={"synth_batch": 4}).resolve()


def test_the_methods_default_k_counts_too(free):
    with pytest.raises(InputError, match=r"^--k \(the deepinv default, 32\): .* \(deepinv\.synth_batch 16\)"):
        DistillConfig(method="deepinv", method_params={"synth_batch": 16}).resolve()


def test_k_above_a_sampling_methods_selection_or_pool_is_refused(free):
    with pytest.raises(InputError, match=r"the 50 selected images .* \(dfnd\.n_select 50\)"):
        DistillConfig(method="dfnd", k=64, method_params={"pool_size": 100, "n_select": 50}).resolve()
    with pytest.raises(InputError, match=r"the 40 images of the wild pool .* \(plain\.pool_size 40\)"):
        DistillConfig(method="plain", k=64, method_params={"pool_size": 40}).resolve()


def test_a_synthetic_batch_that_cannot_fit_is_refused_with_the_numbers(free):
    with pytest.raises(InputError) as err:
        DistillConfig(method="deepinv", k=8, method_params={"synth_batch": 1_000_000}).resolve()
    msg = str(err.value)
    assert msg.startswith("deepinv.synth_batch: 1000000 images do not fit: a deepinv synthesis step "
                          "(through the teacher lenet5, student lenet5_half) needs about ")
    assert "this machine has 16.0 GiB free (test), of which a run's step may use 80% (12.8 GiB)" in msg
    most = int(re.search(r"give deepinv\.synth_batch (\d+) or less", msg)[1])
    DistillConfig(method="deepinv", k=8, method_params={"synth_batch": most}).resolve()  # the advice fits
    with pytest.raises(InputError, match="do not fit"):
        DistillConfig(method="deepinv", k=8, method_params={"synth_batch": most + 1}).resolve()


def test_a_batch_size_that_cannot_fit_is_refused(free):
    free(1 * GIB)
    with pytest.raises(InputError, match=r"^--batch-size: 65536 images do not fit: a student step \(resnet18"):
        DistillConfig(teacher="t.pt", teacher_arch="resnet34", dataset="cifar10", student="resnet18",
                      batch_size=65_536).resolve()


@pytest.mark.parametrize("method", METHODS.names())
def test_the_presets_fit_where_they_are_meant_to_run(method, free):
    """quick: a 2 GiB machine; paper (CIFAR, resnet34 -> resnet18): a 24 GiB GPU. The estimate
    must not refuse the settings the project itself recommends."""
    free(2 * GIB)
    DistillConfig(method=method).resolve()
    free(24 * GIB)
    DistillConfig(teacher="t.pt", teacher_arch="resnet34", dataset="cifar10", method=method,
                  preset="paper").resolve()


def test_the_estimate_follows_the_networks_and_the_image():
    """What autograd keeps per image: more for a larger image and a deeper network; none of the
    weights (counted once, not per image)."""
    small = memory.classifier_bytes("lenet5", 1, 8, 10)
    assert 0 < small < memory.classifier_bytes("lenet5", 1, 28, 10)
    assert memory.classifier_bytes("resnet18", 3, 32, 10) < memory.classifier_bytes("resnet34", 3, 32, 10)
    assert memory.classifier_bytes("resnet18", 3, 32, 10) < 20 * 2**20  # about 7 MiB, not the weights' 45
    assert memory.generator_bytes(100, 64, 3, 32) > memory.generator_bytes(100, 16, 3, 32) > 0


def test_free_memory_is_read_from_this_machine():
    got = memory.free_memory("cpu")
    assert got is None or got[0] > 0
