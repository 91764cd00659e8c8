"""Views of finished students (the paper's Figures 5 and 6): features on a fixed test subset,
per-class deltas and the test images one student fixes or breaks against the other."""

from __future__ import annotations

import numpy as np
import pytest

from kdci_core.errors import InputError
from kdci_core.reports.students import (corrected_examples, load_run_student, per_class_delta,
                                        run_test_split, student_view, subset_indices)
from kdci_core.runs import RunStore, run_inline
from tests.helpers import tiny_config

FAST_DEEPINV = {"g_steps": 3, "synth_every": 2, "synth_batch": 40}


def test_corrected_examples():
    labels = np.array([0, 1, 2, 3, 4])
    kdci = np.array([0, 1, 0, 3, 0])
    vanilla = np.array([0, 0, 2, 1, 0])
    c = corrected_examples(labels, kdci, vanilla)
    assert c.fixed.tolist() == [1, 3] and c.broken.tolist() == [2]
    with pytest.raises(InputError):
        corrected_examples(labels, kdci[:3], vanilla)


def test_subset_indices_fixed_and_sorted():
    a, b = subset_indices(1000, 50, seed=1), subset_indices(1000, 50, seed=1)
    assert np.array_equal(a, b) and np.all(np.diff(a) > 0) and len(a) == 50
    assert np.array_equal(subset_indices(10, 50), np.arange(10))


def test_student_views_of_two_finished_runs(builtin):
    store = RunStore()
    runs = [store.get(run_inline(tiny_config(kdci=kdci, method_params=FAST_DEEPINV)).run_id)
            for kdci in (True, False)]
    test = run_test_split(runs[0])
    views = [student_view(r, test, num_classes=10, max_points=100) for r in runs]
    for v, r in zip(views, runs):
        assert v.features.shape[0] == 100 and v.features.ndim == 2 and np.isfinite(v.features).all()
        assert v.evaluation.accuracy == pytest.approx(r.result()["student_accuracy"])
    assert np.array_equal(views[0].indices, views[1].indices)
    delta = per_class_delta(views[0].evaluation, views[1].evaluation)
    assert delta.shape == (10,)
    c = corrected_examples(test.labels.numpy(), views[0].evaluation.predictions,
                           views[1].evaluation.predictions)
    acc_gap = 100 * (len(c.fixed) - len(c.broken)) / len(test)
    assert acc_gap == pytest.approx(views[0].evaluation.accuracy - views[1].evaluation.accuracy)


def test_student_view_of_unfinished_run_is_rejected(builtin):
    run = RunStore().create(tiny_config().to_dict())
    with pytest.raises(InputError, match="no student checkpoint"):
        load_run_student(run)
