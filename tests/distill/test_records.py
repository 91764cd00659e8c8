"""The loop's typed outputs: fit() returns a whole FitResult of EpochRecords that no callback can
patch, they write the flat JSON of earlier releases and read it back; DistillConfig.resolve()
gives a new complete config and leaves the caller's untouched."""

from __future__ import annotations

import dataclasses

import pytest

from kdci_core.distill import RECORD_VERSION, Callback, DistillConfig, Distiller, EpochRecord, FitResult
from tests.helpers import tiny_config


class Patcher(Callback):
    """What a callback did before records were typed: add keys to the loop's output."""

    def __init__(self):
        self.refused = []

    def on_epoch_end(self, record):
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.student_accuracy = 100.0
        self.refused.append(record.epoch)

    def on_fit_end(self, result):
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.run_id = "x"
        self.refused.append("end")


def test_fit_returns_a_whole_typed_result_no_callback_patches(builtin):
    patcher = Patcher()
    result = Distiller(tiny_config(kdci=True, k=4)).fit(callbacks=[patcher])
    assert isinstance(result, FitResult) and patcher.refused == [1, 2, "end"]
    assert all(isinstance(h, EpochRecord) for h in result.history) and [h.step for h in result.history] == [5, 10]
    last = result.history[-1]
    assert {"loss", "kd"} <= set(last.losses) and last.loss == last.losses["loss"]
    assert {"kdci_compensation", "compensated_accuracy"} <= set(last.kdci) and not set(last.kdci) & set(last.losses)
    assert last.system["rss_mb"] > 0 and "cpu_percent" in last.system  # measured by the loop itself
    assert sum(result.prediction_counts) == 360 and result.dictionary["k"] <= 4
    assert not hasattr(result, "run_id")  # the run store's record holds the id, not the loop's result


def test_json_round_trip_and_the_flat_lines_of_earlier_releases(builtin):
    result = Distiller(tiny_config(kdci=False)).fit()
    data = result.to_json()
    assert data["version"] == RECORD_VERSION and data["history"][0]["version"] == RECORD_VERSION
    assert {"epoch", "step", "student_accuracy", "loss", "rss_mb"} <= set(data["history"][0])  # flat
    assert FitResult.from_json(data) == result
    old_line = {"epoch": 1, "step": 5, "student_accuracy": 40.0, "wall_time_s": 1.0, "lr": 0.01,
                "loss": 2.0, "kd": 2.0, "kdci_compensation": 0.1, "cpu_percent": 90.0}  # no version
    rec = EpochRecord.from_json(old_line)
    assert rec.losses == {"loss": 2.0, "kd": 2.0} and rec.kdci == {"kdci_compensation": 0.1}
    assert rec.system == {"cpu_percent": 90.0} and rec.to_json() == {"version": RECORD_VERSION, **old_line}
    stored = {**data, "run_id": "20260101-000000-x", "history": [old_line]}  # a store record: its id is not a field
    assert FitResult.from_json(stored).history == (rec,)


def test_resolve_returns_a_new_complete_config_and_leaves_the_callers():
    mine = DistillConfig(method="deepinv", k=8, method_params={"g_steps": "5"})
    before = dataclasses.asdict(mine)
    resolved = mine.resolve()
    assert dataclasses.asdict(mine) == before  # untouched: no preset filled in, params as typed
    assert mine.epochs is None and mine.method_params == {"g_steps": "5"}
    assert resolved is not mine and resolved.epochs is not None and resolved.method_params["g_steps"] == 5
    assert resolved.resolve() == resolved  # idempotent
