"""Shared machinery of the benchmark scripts.

Each run is the real command line (``python -m kdci_core distill ... --json``) in a fresh
process, so peak memory is per run. A benchmark is a grid: methods x seeds x *variants* (KDCI
off/on, the ablations, K values); the summary gives, per method and variant, the student's
accuracy as mean +- std over seeds and the paired (same-seed) difference to a reference
variant, with the wall-time and peak-memory ratios to it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
OUT = REPO / "benchmarks" / "out"


def run_cli(args: list[str]) -> dict:
    """Run ``python -m kdci_core ...`` in its own process; return its --json result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "kdci_core", *args, "--json", str(out), "--quiet"]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        return json.loads(out.read_text())


def engine_fingerprint() -> str:
    """What a cached result was measured with: a sha256 over every source file of ``kdci_core/``
    (path and bytes), so any engine change, committed or not, makes older rows stale."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "kdci_core").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def run_settings() -> dict:
    """The settings outside the command line that change what a run measures."""
    import torch

    return {"torch": torch.__version__, "python": sys.version.split()[0],
            "KDCI_NUM_THREADS": os.environ.get("KDCI_NUM_THREADS", "default")}


class ResultCache:
    """Results of finished runs, one JSON line each, keyed by the engine's fingerprint, the
    settings of :func:`run_settings` and the exact command line. A row from another engine or
    other settings is never replayed. A replayed result carries ``replayed: True``: its accuracy
    counts, its wall time and memory (measured another time) are left out of every time figure."""

    def __init__(self, path: Path | None):
        self.path, self.known, self.stale = path, {}, 0
        self.engine, self.settings = engine_fingerprint(), run_settings()
        if path and path.exists():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a torn last line from a killed grid
                    continue
                if rec.get("engine") == self.engine and rec.get("settings") == self.settings:
                    self.known[tuple(rec["args"])] = rec["result"]
                else:
                    self.stale += 1
            print(f"cache {path}: {len(self.known)} row(s) of engine {self.engine} usable, "
                  f"{self.stale} of another engine or settings ignored")
        self.lock = threading.Lock()

    def run(self, args: list[str]) -> dict:
        if tuple(args) in self.known:
            return {**self.known[tuple(args)], "replayed": True}
        result = run_cli(args)
        if self.path:
            line = {"engine": self.engine, "settings": self.settings, "args": args,
                    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "result": result}
            with self.lock, self.path.open("a") as f:
                f.write(json.dumps(line) + "\n")
        return {**result, "replayed": False}


def measured(runs: list[dict]) -> list[dict]:
    """The runs measured by this invocation (not replayed from the cache)."""
    return [r for r in runs if not r.get("replayed")]


def cost(these: list[dict], ref: list[dict]) -> dict:
    """Wall time and peak memory of a variant and their ratios to the reference, over measured
    runs only (None where every run of either side was replayed)."""
    mine, theirs = measured(these), measured(ref)

    def avg(rows, key):
        return mean_std([r[key] for r in rows])[0] if rows else None

    out = {"wall_time_s": avg(mine, "wall_time_s"), "peak_memory_mb": avg(mine, "peak_memory_mb"),
           "timed_runs": len(mine), "replayed_runs": len(these) - len(mine)}
    for key, name in (("wall_time_s", "time_ratio"), ("peak_memory_mb", "memory_ratio")):
        a, b = out[key], avg(theirs, key)
        out[name] = a / b if a is not None and b else None
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def paired_stats(diffs: list[float]) -> dict:
    """Mean paired difference, its 95% confidence interval (Student t, n-1 dof) and the paired
    t-test's two-sided p-value (scipy ``ttest_1samp`` of the differences against 0, which is
    ``ttest_rel`` of the two samples)."""
    from scipy import stats

    n = len(diffs)
    m, sd = mean_std(diffs)
    if n < 2 or sd == 0:
        return {"n": n, "mean": m, "ci95": [m, m], "p": None if n < 2 else (0.0 if m else 1.0)}
    half = stats.t.ppf(0.975, n - 1) * sd / n ** 0.5
    return {"n": n, "mean": m, "ci95": [float(m - half), float(m + half)],
            "p": float(stats.ttest_1samp(diffs, 0.0).pvalue)}


def fmt(values: list[float]) -> str:
    m, s = mean_std(values)
    return f"{m:6.2f} +- {s:5.2f}"


def machine() -> str:
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {gpu}, "
            f"torch {torch.__version__}, KDCI_NUM_THREADS={os.environ.get('KDCI_NUM_THREADS', 'default')}")


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


# --- the grid ---------------------------------------------------------------------------------
def parser(description: str, methods: list[str]) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-root")
    ap.add_argument("--teacher", help="teacher file (default: built-in for digits, else trained here)")
    ap.add_argument("--teacher-arch", default="lenet5")
    ap.add_argument("--teacher-epochs", type=int, default=5)
    ap.add_argument("--student", default="lenet5_half")
    ap.add_argument("--methods", nargs="+", default=methods)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--steps-per-epoch", type=int, default=50)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (one process each)")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="method hyperparameter passed to every run (repeatable)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--cache", type=Path, metavar="JSONL",
                    help="append each finished run here and replay runs already in it (same engine "
                         "source hash, settings and command line); lets a stopped grid resume and "
                         "grids share runs. Replayed runs are marked and left out of time and memory")
    return ap


def teacher_args(args) -> list[str]:
    if args.dataset == "digits" and not args.teacher:
        return ["--teacher", "builtin"]
    if args.teacher:
        return ["--teacher", args.teacher, "--teacher-arch", args.teacher_arch]
    from kdci_core.common.device import resolve_device
    from kdci_core.teachers import train_teacher

    out = OUT / f"teacher-{args.dataset}-{args.teacher_arch}-e{args.teacher_epochs}.safetensors"
    if not out.exists():  # a teacher the project trains itself, once
        t0 = time.time()
        s = train_teacher(args.dataset, args.teacher_arch, epochs=args.teacher_epochs, out=out,
                          data_root=args.data_root, device=resolve_device(args.device))
        print(f"trained teacher {args.teacher_arch} on {args.dataset}: {s['test_accuracy']:.2f}% "
              f"in {time.time() - t0:.0f} s -> {out}")
    return ["--teacher", str(out), "--teacher-arch", args.teacher_arch]


def run_grid(args, variants: dict[str, list[str]]) -> list[dict]:
    """Every method x seed x variant as its own CLI process; returns one record per run."""
    if args.dataset == "fashion-mnist" and not args.data_root:
        args.data_root = str(SHARED / "data" / "fashion-mnist")
    base = [*teacher_args(args), "--student", args.student, "--dataset", args.dataset,
            "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps_per_epoch),
            "--device", args.device, *(["--data-root", args.data_root] if args.data_root else []),
            *[a for p in args.param for a in ("--param", p)]]
    grid = [(m, s, v) for m in args.methods for s in args.seeds for v in variants]
    jobs = [["distill", *base, "--method", m, "--seed", str(s), *variants[v]] for m, s, v in grid]
    cache = ResultCache(args.cache)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(cache.run, jobs))
    return [{"method": m, "seed": s, "variant": v, "student_accuracy": r["student_accuracy"],
             "teacher_accuracy": r["teacher_accuracy"], "wall_time_s": r["wall_time_s"],
             "peak_memory_mb": r["peak_memory_mb"], "device": r["device"], "run_id": r["run_id"],
             "k": r.get("k"), "telemetry": r.get("kdci_telemetry"), "replayed": r["replayed"]}
            for (m, s, v), r in zip(grid, results)]


#: KDCI's telemetry (kdci/telemetry.py) averaged per variant in every grid's summary
TELEMETRY = ("kdci_compensation", "kdci_attention_entropy", "kdci_prototypes_used", "kdci_top_attention")


def telemetry_summary(these: list[dict]) -> dict:
    """The mean telemetry of a variant's KDCI-on runs and how many were inert (None without any)."""
    tel = [r["telemetry"] for r in these if r.get("telemetry")]
    if not tel:
        return {"telemetry": None, "inert": None, "telemetry_runs": 0}
    return {"telemetry": {k: mean_std([t[k] for t in tel])[0] for k in TELEMETRY},
            "inert": sum(bool(t.get("inert_reason")) for t in tel), "telemetry_runs": len(tel)}


def print_telemetry(rows: list[dict]) -> None:
    """Did KDCI act? The telemetry columns of the rows that have it (compensation / the logits'
    spread, attention entropy / log K', prototypes used, top attention, inert runs)."""
    rows = [r for r in rows if r.get("telemetry")]
    if not rows:
        return
    print(f"\n{'method':<18} {'variant':<24} {'compensation':>12} {'att. entropy':>12} {'protos':>7} "
          f"{'top att.':>8} {'inert':>6}")
    for row in rows:
        t = row["telemetry"]
        print(f"{row['method']:<18} {row['variant']:<24} {t['kdci_compensation']:12.3f} "
              f"{t['kdci_attention_entropy']:12.3f} {t['kdci_prototypes_used']:7.1f} "
              f"{t['kdci_top_attention']:8.3f} {row['inert']:>3}/{row['telemetry_runs']}")


def variant_row(label: str, variant: str, these: list[dict], ref: list[dict], reference: str) -> dict:
    """One summary row: accuracy over seeds, the paired difference to the reference variant (runs
    paired by seed), the cost over measured runs and the telemetry."""
    acc = [r["student_accuracy"] for r in these]
    diffs = [a["student_accuracy"] - b["student_accuracy"] for a, b in zip(these, ref)]
    return {"method": label, "variant": variant, "mean": mean_std(acc)[0], "std": mean_std(acc)[1],
            "accuracies": acc, "diff_mean": mean_std(diffs)[0], "diff_std": mean_std(diffs)[1],
            "diffs": diffs, "reference": reference, "paired": paired_stats(diffs),
            **cost(these, ref), **telemetry_summary(these)}


def summarise(runs: list[dict], methods: list[str], variants: list[str], reference: str) -> list[dict]:
    rows = []
    for m in methods:
        def pick(v):
            return sorted((r for r in runs if r["method"] == m and r["variant"] == v), key=lambda r: r["seed"])
        rows += [variant_row(m, v, pick(v), pick(reference), reference) for v in variants]
    return rows


def _num(value, spec: str, width: int) -> str:
    """A number, or "replayed" where it was not measured by this invocation."""
    return f"{value:{width}{spec}}" if value is not None else f"{'replayed':>{width}}"


def print_table(rows: list[dict], title: str) -> None:
    ref = rows[0]["reference"] if rows else ""
    print(f"\n{title}\n{'method':<9} {'variant':<22} {'accuracy':>16} {'vs ' + ref + ' (paired)':>22}  "
          f"{'95% CI':>17} {'p':>6}  {'per-seed':<34} {'time x':>8} {'mem x':>8} {'time s':>8} {'MB':>8}")
    for r in rows:
        same = r["variant"] == ref
        diff = "" if same else f"{r['diff_mean']:+6.2f} +- {r['diff_std']:5.2f}"
        lo, hi = r["paired"]["ci95"]
        ci = "" if same else f"[{lo:+6.2f}, {hi:+6.2f}]"
        p = "" if same or r["paired"]["p"] is None else f"{r['paired']['p']:.3f}"
        seeds = "" if same else " ".join(f"{d:+.2f}" for d in r["diffs"])
        print(f"{r['method']:<9} {r['variant']:<22} {r['mean']:9.2f} +- {r['std']:4.2f} {diff:>22}  "
              f"{ci:>17} {p:>6}  {seeds:<34} {_num(r['time_ratio'], '.2f', 8)} "
              f"{_num(r['memory_ratio'], '.3f', 8)} {_num(r['wall_time_s'], '.1f', 8)} "
              f"{_num(r['peak_memory_mb'], '.0f', 8)}")
    replayed = sum(r.get("replayed_runs", 0) for r in rows)
    if replayed:
        print(f"({replayed} run(s) replayed from the cache: their accuracies count; their time and "
              f"memory, measured another time, are left out of the time and memory columns)")


def finish(args, name: str, runs: list[dict], rows: list[dict], started: float) -> None:
    total = time.time() - started
    timed, replayed = measured(runs), len(runs) - len(measured(runs))
    print(f"\n{len(timed)} run(s) measured in {total:.0f} s"
          + (f" ({replayed} more replayed from the cache, not timed)" if replayed else "")
          + f" on {machine()}; engine {engine_fingerprint()}; teacher {runs[0]['teacher_accuracy']:.2f}%")
    out = args.out or OUT / f"{name}-{args.dataset}.json"
    write_json(out, {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                     "machine": machine(), "engine": engine_fingerprint(), "total_time_s": total,
                     "measured_runs": len(timed), "replayed_runs": replayed,
                     "summary": rows, "runs": runs})
    print(f"wrote {out}")
