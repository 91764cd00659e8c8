"""Results that flag themselves and the W&B-grade records: the final student's prediction
histogram in ``result.json`` (a collapsed student flagged in the index, the table and the worker's
log) and the system metrics recorded with every epoch."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn as nn

from kdci_core.runs import RunStore, run_inline
from kdci_core.runs.collapse import collapse_text, prediction_summary
from kdci_core.runs.recorder import ResultRecorder
from kdci_core.common.system import SystemSampler
from kdci_core.distill import FitResult
from kdci_core.runs.table import table_rows
from tests.helpers import tiny_config


class Always(nn.Module):
    """A student that predicts class ``c`` for every image (what a collapsed run ends with)."""

    def __init__(self, c: int, classes: int = 10):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(classes))
        with torch.no_grad():
            self.bias[c] = 5.0

    def forward(self, x):
        return self.bias.expand(len(x), -1)


def _fake_distiller(student, n=50):
    info = SimpleNamespace(num_classes=10, in_channels=1,
                           class_names=("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                        "Shirt", "Sneaker", "Bag", "Ankle boot"))
    return SimpleNamespace(student=student, device=torch.device("cpu"), info=info,
                           data=SimpleNamespace(test=SimpleNamespace(images=torch.zeros(n, 1, 8, 8))),
                           cfg=SimpleNamespace(student="lenet5"))


def test_a_collapsed_student_is_flagged_from_its_prediction_histogram(tmp_path):
    """A student calling every test image "Shirt" ends at one class's share; the result carries
    its histogram and class names, the index and the table flag it, the worker's log says so."""
    store = RunStore(tmp_path)
    run = store.create(tiny_config().to_dict())
    rec = ResultRecorder(run)
    rec.on_fit_start(_fake_distiller(Always(6)))
    names = [str(c) for c in _fake_distiller(Always(6)).info.class_names]
    rec.on_fit_end(FitResult.from_json({"student_accuracy": 10.0, "class_names": names,
                                        "prediction_counts": [0] * 6 + [50] + [0] * 3}))
    result = run.result()
    assert result["run_id"] == run.run_id  # the store's record: the run's id, then the loop's result
    assert result["prediction_counts"] == [0] * 6 + [50] + [0] * 3
    summary = prediction_summary(result)
    assert summary["collapsed"] and summary["name"] == "Shirt" and summary["share"] == 1.0
    assert collapse_text(summary) == "collapsed: predicts Shirt for 100% of the 50 test images"
    (row,) = table_rows(RunStore(tmp_path))
    assert row["collapsed"] and row["top_class"] == "Shirt"
    assert "warning: the student is collapsed: predicts Shirt" in run.log_tail()


def test_a_real_run_records_its_histogram_and_system_metrics_per_epoch(builtin, tmp_path):
    """Every epoch record has the process's CPU % and resident memory (no CUDA keys on a CPU);
    the result has one prediction per test image."""
    store = RunStore(tmp_path)
    done = run_inline(tiny_config(epochs=2, steps_per_epoch=3), store=store)
    run = store.get(done.run_id)
    assert sum(done.result.prediction_counts) == 360  # the loop's own final evaluation
    history = run.metrics()
    assert len(history) == 2
    for record in history:
        assert record["cpu_percent"] >= 0 and record["rss_mb"] > 10
        assert "cuda_allocated_mb" not in record
    saved = run.result()
    assert sum(saved["prediction_counts"]) == 360 and len(saved["class_names"]) == 10  # digits' test split
    assert run.history()[0]["rss_mb"] == history[0]["rss_mb"]


def test_system_metrics_cpu_share_is_over_the_epoch():
    """CPU % is CPU seconds over wall seconds since the last epoch: a busy loop shows above 0 and
    at most 100 per core (how far above 0 depends on the machine's load: not asserted)."""
    sampler = SystemSampler(torch.device("cpu"))
    import time

    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    record = sampler.sample()
    import os

    assert 0 < record["cpu_percent"] <= 100 * (os.cpu_count() or 1) * 1.05 and record["rss_mb"] > 0
