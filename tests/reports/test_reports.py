"""Comparison of finished runs (KDCI on vs off across seeds) and its report: numbers checked by
hand against the runs' results, the paired t-test against scipy, curves and EMA smoothing, the
self-contained HTML export with its JSON and Markdown siblings, and the ``report`` command."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
from scipy import stats

from kdci_core.errors import InputError
from kdci_core.figures.runs import curves_figure, ema, gain_figure
from kdci_core.reports import compare_runs, export_report, student_comparison, students_section
from kdci_core.runs import RunStore
from tests.helpers import finished_runs, tiny_config

@pytest.fixture(scope="module")
def runs(builtin):
    return finished_runs()


def _acc(store, run_id):
    return store.get(run_id).result()["student_accuracy"]


def check_progress(calls: list) -> None:
    """One bar: a fixed total, ``done`` never decreasing, from the start up to the total."""
    assert calls and len({c[1] for c in calls}) == 1, {c[1] for c in calls}
    done = [c[0] for c in calls]
    assert done == sorted(done) and done[0] == 0 and done[-1] == calls[0][1]


def test_compare_numbers_by_hand(runs):
    store, ids = runs
    comp = compare_runs(store, list(ids.values()))
    on = [_acc(store, ids[(True, s)]) for s in (0, 1)]
    off = [_acc(store, ids[(False, s)]) for s in (0, 1)]
    groups = {g.kdci: g for g in comp.groups}
    assert [g.kdci for g in comp.groups] == [True, False] and {g.method for g in comp.groups} == {"deepinv"}
    for kdci, accs in ((True, on), (False, off)):
        g = groups[kdci]
        assert g.n == 2 and sorted(g.seeds) == [0, 1]
        assert g.mean == pytest.approx((accs[0] + accs[1]) / 2)
        assert g.std == pytest.approx(abs(accs[0] - accs[1]) / math.sqrt(2))  # sample std of two
    m = comp.gains["deepinv"]
    gains = [on[0] - off[0], on[1] - off[1]]
    assert m.n == 2 and [p.seed for p in m.pairs] == [0, 1]
    assert [p.gain for p in m.pairs] == pytest.approx(gains)
    assert m.mean == pytest.approx(sum(gains) / 2)
    assert m.std == pytest.approx(abs(gains[0] - gains[1]) / math.sqrt(2))
    assert m.positive == sum(g > 0 for g in gains)
    ref = stats.ttest_rel(on, off).pvalue
    assert (m.p_value is None) if math.isnan(ref) else m.p_value == pytest.approx(ref)
    wall = {k: store.get(v).result()["wall_time_s"] for k, v in ids.items()}
    assert m.wall_time_ratio == pytest.approx((wall[(True, 0)] + wall[(True, 1)]) /
                                              (wall[(False, 0)] + wall[(False, 1)]))
    assert m.peak_memory_ratio is not None and m.peak_memory_ratio > 0
    # the only notes: students that collapsed (these tiny runs often do), each a run whose
    # prediction histogram has one class above 80% (runs.collapse)
    collapsed = {r.run_id for r in comp.runs if r.collapsed}
    assert [n for n in comp.notes if "the student is collapsed" not in n] == []
    assert {n.split()[1] for n in comp.notes} == collapsed
    for r in comp.runs:
        counts = store.get(r.run_id).result()["prediction_counts"]
        assert sum(counts) == 360 and (max(counts) / 360 > 0.8) == (r.run_id in collapsed)
    out = json.loads(json.dumps(comp.to_dict(), allow_nan=False))
    assert out["gains"]["deepinv"]["mean"] == pytest.approx(m.mean) and len(out["runs"]) == 4


def _fake_finished(store, *, method="deepinv", kdci=True, seed=0, acc=50.0, wall=10.0, mem=100.0,
                   epochs=2) -> str:
    """A finished run with chosen numbers (no training): for checks against hand-made values."""
    run = store.create(tiny_config(method=method, kdci=kdci, seed=seed, epochs=epochs).to_dict())
    run.write_result({"student_accuracy": acc, "wall_time_s": wall, "peak_memory_mb": mem, "device": "cpu"})
    run.set_status("running")  # the state machine's way to an end (runs.status.TRANSITIONS)
    run.set_status("finished")
    return run.run_id


def test_compare_chosen_numbers(tmp_path):
    store = RunStore(tmp_path / "home")
    on, off = [90.0, 92.0, 91.5], [88.0, 91.0, 91.5]
    ids = [_fake_finished(store, kdci=k, seed=s, acc=a, wall=20.0 if k else 10.0, mem=150.0 if k else 100.0)
           for s in range(3) for k, a in ((True, on[s]), (False, off[s]))]
    ids += [_fake_finished(store, method="dfnd", kdci=k, seed=s, acc=a)
            for s, k, a in ((0, True, 80.0), (0, False, 79.0), (1, True, 81.0), (1, False, 82.0))]
    ids.append(_fake_finished(store, method="dfnd", kdci=True, seed=2, acc=70.0, epochs=5))
    comp = compare_runs(store, ids)
    assert [(g.method, g.kdci, g.n) for g in comp.groups] == [("deepinv", True, 3), ("deepinv", False, 3),
                                                              ("dfnd", True, 3), ("dfnd", False, 2)]
    assert comp.groups[0].mean == pytest.approx(np.mean(on)) and comp.groups[0].std == pytest.approx(np.std(on, ddof=1))
    d = comp.gains["deepinv"]
    assert [p.gain for p in d.pairs] == pytest.approx([2.0, 1.0, 0.0])
    assert (d.mean, d.std) == pytest.approx((1.0, 1.0))
    assert d.p_value == pytest.approx(stats.ttest_rel(on, off).pvalue) and d.positive == 2
    assert d.wall_time_ratio == pytest.approx(2.0) and d.peak_memory_ratio == pytest.approx(1.5)
    f = comp.gains["dfnd"]
    assert [p.gain for p in f.pairs] == pytest.approx([1.0, -1.0]) and f.positive == 1
    assert f.p_value == pytest.approx(stats.ttest_rel([80.0, 81.0], [79.0, 82.0]).pvalue)
    assert any("no KDCI-off run of dfnd seed 2" in n for n in comp.notes)
    assert any("dfnd kdci=on mixes" in n for n in comp.notes)
    md = comp.to_markdown()
    assert "| deepinv | 3 | +1.00 ± 1.00 |" in md and "| 2/3 |" in md


def test_unpaired_run_is_noted_and_single_pair_has_no_test(runs):
    store, ids = runs
    comp = compare_runs(store, [ids[(True, 0)], ids[(False, 0)], ids[(True, 1)], ids[(True, 0)]])
    m = comp.gains["deepinv"]
    assert m.n == 1 and m.p_value is None and m.std is None
    assert any(ids[(True, 1)] in n and "not paired" in n for n in comp.notes)
    assert any("repeated" in n for n in comp.notes)
    assert comp.groups[0].n == 2  # the unpaired run still counts in its group's mean
    only_on = compare_runs(store, [ids[(True, 0)]])
    assert only_on.gains == {} and "No KDCI-on run" in only_on.to_markdown()


def test_unknown_and_unfinished_runs_rejected(runs, tmp_path):
    store, ids = runs
    with pytest.raises(InputError, match="nope-123"):
        compare_runs(store, [ids[(True, 0)], "nope-123"])
    other = RunStore(tmp_path / "home")
    queued = other.create(tiny_config().to_dict())
    with pytest.raises(InputError, match=rf"run {queued.run_id}: not finished \(status queued\)"):
        compare_runs(other, [queued.run_id])
    with pytest.raises(InputError, match="at least one"):
        compare_runs(store, [])


def test_ema_hand_checked():
    assert ema([0.0, 10.0, 10.0], 0.5) == pytest.approx([0.0, 5 / 0.75, 7.5 / 0.875])
    assert ema([3.0, None, 5.0], 0.0) == [3.0, None, 5.0]
    with pytest.raises(InputError, match="smoothing"):
        ema([1.0], 1.0)


def test_curves_figure(runs, tmp_path):
    store, ids = runs
    run_list = [store.get(i) for i in ids.values()]
    series = [r.series() for r in run_list]
    fig = curves_figure(series, x="epoch", smoothing=0.0)
    assert len(fig.data) == 4
    for trace, run in zip(fig.data, run_list):  # short names; the full id in the hover
        setting = "on" if run.config()["kdci"] else "off"
        assert trace.name == f"deepinv · KDCI {setting} · seed {run.config()['seed']} · {run.run_id[-6:]}"
        assert {c[1] for c in trace.customdata} == {run.run_id}
        assert "%{customdata[1]}" in trace.hovertemplate
        assert list(trace.y) == pytest.approx([m["student_accuracy"] for m in run.metrics()])
        assert list(trace.x) == [1, 2, 3]
    colours = {(r.config()["kdci"], tr.line.color) for r, tr in zip(run_list, fig.data)}
    assert len(colours) == 2 and len({c for _, c in colours}) == 2  # one colour per setting here
    assert {tr.line.dash for tr in fig.data} == {"solid", "dash"}  # one dash per seed
    assert fig.layout.xaxis.dtick == 1  # whole epochs on the axis
    legend = fig.layout.legend  # under the plot: a long legend beside it squeezed the plot area
    assert legend.orientation == "h" and legend.y < 0 and legend.yanchor == "top"
    wall = curves_figure(series, x="wall_time", y="loss")
    assert wall.layout.xaxis.dtick is None
    assert list(wall.data[0].x) == [m["wall_time_s"] for m in run_list[0].metrics()]
    assert list(wall.data[0].y) == pytest.approx([m["loss"] for m in run_list[0].metrics()])
    with pytest.raises(InputError, match="x"):
        curves_figure(series, x="minutes")

    # smoothing smooths: a zig-zag run, hand-checked
    zig = RunStore(tmp_path / "zig").create(tiny_config().to_dict())
    raw = [0.0, 10.0, 0.0, 10.0, 0.0, 10.0]
    for i, v in enumerate(raw):
        zig.append_metrics({"epoch": i + 1, "step": 5 * (i + 1), "student_accuracy": v, "wall_time_s": i})
    y = list(curves_figure([zig.series()], smoothing=0.8).data[0].y)
    assert y == pytest.approx(ema(raw, 0.8))
    assert y[:2] == pytest.approx([0.0, 2.0 / 0.36])  # (0.8*0 + 0.2*10) / (1 - 0.8**2)
    assert np.abs(np.diff(y)).sum() < np.abs(np.diff(raw)).sum() / 3


def test_gain_figure(runs):
    store, ids = runs
    comp = compare_runs(store, list(ids.values()))
    fig = gain_figure(comp)
    assert list(fig.data[0].x) == ["deepinv"]
    assert fig.data[0].y[0] == pytest.approx(comp.gains["deepinv"].mean)
    assert fig.data[0].error_y.array[0] == pytest.approx(comp.gains["deepinv"].std)


def test_students_of_a_pair(runs):
    store, ids = runs
    calls = []
    sc = student_comparison(store, ids[(True, 0)], ids[(False, 0)], method="pca", max_points=200,
                            progress=lambda *a: calls.append(a))
    check_progress(calls)
    stages = [c[2] for c in calls]
    assert sum(d.startswith("students: evaluating") for d in set(stages)) == 2  # one per run
    assert any(d.startswith("students: PCA of") and "› PCA: fitting 200 points" in d for d in stages)
    assert sc.accuracies == pytest.approx((_acc(store, ids[(True, 0)]), _acc(store, ids[(False, 0)])))
    gap = 100 * (len(sc.fixed) - len(sc.broken)) / 360  # digits' test split
    assert gap == pytest.approx(sc.accuracies[0] - sc.accuracies[1])
    assert len(sc.point_labels[0]) == 200 and sc.delta.shape == (10,)
    figs = sc.figures()
    assert set(figs) == {"embedding", "per_class_delta", "fixed", "broken"}
    assert len(figs["embedding"].data) == 20  # 10 classes x 2 students
    for key, idx in (("fixed", sc.fixed), ("broken", sc.broken)):
        notes = [a.text for a in figs[key].layout.annotations]
        if len(idx):
            assert len(notes) == min(32, len(idx)) and all("→" in t for t in notes)
        else:
            assert notes == ["no such test images"]
    assert set(students_section(store, ids[(True, 1)], ids[(False, 1)], method="pca", max_points=100)) == set(figs)
    with pytest.raises(InputError, match="twice"):
        student_comparison(store, ids[(True, 0)], ids[(True, 0)])


def test_export_report_is_self_contained(runs, tmp_path):
    from plotly.offline import get_plotlyjs

    store, ids = runs
    calls = []
    paths = export_report(store, list(ids.values()), tmp_path / "out" / "report.html", projection="pca",
                          max_points=200, progress=lambda *a: calls.append(a))
    check_progress(calls)
    figures = {c[2] for c in calls if c[2].startswith("report: HTML figure")}
    assert len(figures) == 7 and any(c[2].startswith("report: the student views › students: PCA")
                                     for c in calls)
    alone = []  # one setting only: no gain figure, no pair for the student views; still one bar
    export_report(store, [ids[(True, 0)]], tmp_path / "alone.html", progress=lambda *a: alone.append(a))
    check_progress(alone)
    assert not any("students" in c[2] or "gain" in c[2] for c in alone)
    assert [p.name for p in paths] == ["report.html", "report.json", "report.md"]
    page = paths[0].read_text()
    low = page.lower()
    assert "<script src=" not in low and "<link " not in low
    assert page.count(get_plotlyjs()[:400]) == 1  # plotly.js embedded once, in <head>
    assert page.index(get_plotlyjs()[:400]) < page.index("</head>")
    n_figs = page.count('class="plotly-graph-div"')
    collapsed = sum(r.collapsed for r in compare_runs(store, list(ids.values())).runs)
    # gain, 2 curves, embedding, per-class delta, 2 image grids, a histogram per collapsed student
    assert n_figs == 7 + collapsed and page.count('<p class="flag">') == collapsed
    assert low.count("<script") == n_figs + 1 and "Plotly.newPlot" in page.split("</head>", 1)[1]
    for run_id in ids.values():
        assert run_id in page
    assert "digits" in page and "Device: cpu" in page
    comp = compare_runs(store, list(ids.values()))
    data = json.loads(paths[1].read_text())
    assert data["run_ids"] == list(ids.values()) and data["datasets"] == ["digits"]
    assert data["comparison"]["gains"]["deepinv"]["mean"] == pytest.approx(comp.gains["deepinv"].mean)
    assert [g["mean"] for g in data["comparison"]["groups"]] == pytest.approx([g.mean for g in comp.groups])
    assert data["students"]["fixed"] >= 0 and len(data["students"]["per_class_delta"]) == 10
    md = paths[2].read_text()
    assert "| method | KDCI | seeds | accuracy (%) | runs |" in md
    on = comp.groups[0]
    assert f"| deepinv | on | 2 | {on.mean:.2f} ± {on.std:.2f} |" in md
    # every run's config, and the command that makes it again (parsed back: the same config)
    assert "Run configurations (to reproduce every run)" in page and "Run configurations" in md
    assert set(data["configs"]) == set(ids.values())
    for run_id in ids.values():
        assert data["configs"][run_id]["method"] == "deepinv"
    _check_commands(store, comp)
    with pytest.raises(InputError, match="formats"):
        export_report(store, list(ids.values()), tmp_path / "x.html", formats=("pdf",))


def _check_commands(store, comp) -> None:
    """The report's per-run command parses back into the run's stored config; the shared table
    holds what all runs agree on and the per-run table what tells them apart."""
    import shlex

    from kdci_core.cli import build_parser
    from kdci_core.cli.common import config_from_args
    from kdci_core.reports.tables import config_tables

    shared, per_run = config_tables(comp)
    assert {"field": "method", "value": "deepinv"} in shared
    assert {r["run"] for r in per_run} == {r.run_id for r in comp.runs}
    assert all("kdci" in r and "seed" in r for r in per_run)  # on/off and two seeds differ
    for row in per_run:
        argv = shlex.split(row["command"])[3:]
        again = config_from_args(build_parser(argv).parse_args(argv)).resolve().to_dict()
        stored = store.get(row["run"]).config()
        assert {k: again[k] for k in stored} == stored


def _cli(argv):
    from kdci_core.cli.report import add_parser as add_report_parser

    p = argparse.ArgumentParser()
    add_report_parser(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return args.func(args)


def test_report_command(runs, tmp_path, monkeypatch, capsys):
    store, ids = runs
    monkeypatch.setenv("KDCI_HOME", str(store.home))
    out = tmp_path / "cli" / "r.html"
    code = _cli(["report", "--runs", *ids.values(), "--out", str(out), "--no-students",
                 "--json", str(tmp_path / "cmp.json")])
    assert code == 0, capsys.readouterr().err
    assert out.exists() and out.with_suffix(".md").exists() and out.with_suffix(".json").exists()
    assert "<h2>Students:" not in out.read_text().split("</script>", 1)[1]  # no student views
    assert json.loads((tmp_path / "cmp.json").read_text())["gains"]["deepinv"]["n"] == 2
    assert "deepinv: KDCI gain" in capsys.readouterr().out
    code = _cli(["report", "--runs", ids[(True, 0)], "bogus-id", "--out", str(tmp_path / "bad.html")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "bogus-id" in err
    assert not (tmp_path / "bad.html").exists()


def test_an_inert_kdci_run_is_flagged_in_the_comparison_and_the_report(tmp_path):
    store = RunStore(tmp_path / "inert")
    ids = []
    for kdci in (True, False):
        run = store.create({"method": "deepinv", "kdci": kdci, "seed": 0, "dataset": "digits",
                            "student": "lenet5_half", "epochs": 1})
        tel = {"kdci_compensation": 0.004, "kdci_attention_entropy": 0.01, "kdci_prototypes_used": 1,
               "kdci_top_attention": 0.99, "kdci_prototype_agreement": 0.1, "kdci_pz_entropy": 0.9,
               "compensated_accuracy": 50.0,
               "inert_reason": "its compensation is 0.4% of the logits' spread (under 2%)"}
        run.write_result({"student_accuracy": 50.0, "history": [],
                          **({"kdci_telemetry": tel} if kdci else {})})
        run.set_status("running")
        run.set_status("finished")
        ids.append(run.run_id)
    comp = compare_runs(store, ids)
    assert any(n.startswith(f"KDCI is inert in run {ids[0]}") for n in comp.notes)
    md = comp.to_markdown()
    assert "## KDCI telemetry" in md and "0.004" in md and "under 2%" in md


def test_compare_by_any_one_field_pairs_only_runs_alike_in_the_others(tmp_path):
    store = RunStore(tmp_path / "by-field")

    def finished(acc, **cfg):
        run = store.create(tiny_config(kdci=False, **cfg).to_dict())
        run.write_result({"student_accuracy": acc})
        run.set_status("running")
        run.set_status("finished")
        return run.run_id
    none = [finished(50.0 + s, seed=s) for s in range(2)]
    bal = [finished(53.0 + s, seed=s, correction="balanced") for s in range(2)]
    rew = [finished(49.0, seed=0, correction="reweight"), finished(52.0, seed=1, correction="reweight")]
    other = finished(99.0, seed=0, correction="balanced", lr=0.05)  # differs in lr too
    comp = compare_runs(store, none + bal + rew + [other], field="correction")
    assert comp.reference == "none" and set(comp.gains) == {"deepinv correction=balanced",
                                                            "deepinv correction=reweight"}
    assert [p.gain for p in comp.gains["deepinv correction=balanced"].pairs] == pytest.approx([3.0, 3.0])
    assert [p.gain for p in comp.gains["deepinv correction=reweight"].pairs] == pytest.approx([-1.0, 1.0])
    assert any(other in n and "differs in lr" in n and "not paired" in n for n in comp.notes)
    md = comp.to_markdown()
    assert "Gain of correction over correction=none" in md and "| deepinv | balanced |" in md
    with pytest.raises(InputError, match="no compared run has that config field"):
        compare_runs(store, none, field="nonsense")


def test_kdci_on_off_pairs_ignore_kdci_only_options(tmp_path):
    store = RunStore(tmp_path / "kdci-only")
    ids = []
    for kdci, acc in ((True, 61.0), (False, 60.0)):
        run = store.create(tiny_config(kdci=kdci, k=16 if kdci else None, attn_input="tau" if kdci else "raw").to_dict())
        run.write_result({"student_accuracy": acc})
        run.set_status("running")
        run.set_status("finished")
        ids.append(run.run_id)
    comp = compare_runs(store, ids)
    assert comp.gains["deepinv"].pairs[0].gain == pytest.approx(1.0) and comp.notes == []
