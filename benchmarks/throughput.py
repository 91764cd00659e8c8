"""How fast the engine runs: the loop's student step against the bare limit, KDCI's cost, and the
confounder dictionary at the paper's scale.

- *bare*: teacher forward (no grad) + student forward, KD loss, backward and SGD step on one
  fixed batch: what no DFKD loop can beat.
- *loop*: ``Distiller.step`` (the real step: the method's refresh and sampling, augmentation,
  KDCI when on, the method's losses, the optimisers) at steady state, KDCI off and on, after the
  method's one-off preparation; ms per step, median over the timed steps.
- *synthesis*: images per second of DeepInv's and Fast's synthesis rounds at their defaults.
- *dictionary*: ``build_confounder_dictionary`` on N x D logits, K = 128: 60,000 x 10 and
  600,000 x 100 (DFND's scale in the paper), on two data generators (``GENERATORS``), by the
  torch path and by scikit-learn's in the same run, with the torch path's stages (PCA, k-means++
  seeding, Lloyd).

Teachers are untrained (speed does not depend on accuracy). Prints a table, writes JSON.

    KDCI_NUM_THREADS=1 python benchmarks/throughput.py                      # CPU, Fashion-MNIST shapes
    python benchmarks/throughput.py --device cuda --dataset cifar10 --data-root DIR \\
        --teacher-arch resnet34 --student resnet18 --batch-size 256          # a GPU
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from common import OUT, SHARED, machine, write_json
from kdci_core.common.device import resolve_device
from kdci_core.data import load_dataset
from kdci_core.distill import DistillConfig
from kdci_core.distill.loop import Distiller
from kdci_core.kdci import dictionary as dictionary_module
from kdci_core.kdci import intervention
from kdci_core.kdci.additive_score import additive_scores_reference
from kdci_core.kdci.dictionary import build_confounder_dictionary
from kdci_core.methods.losses import kd_loss
from kdci_core.models import build_model, save_checkpoint


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, warmup: int, steps: int) -> list[float]:
    """Milliseconds of each of ``steps`` calls of ``fn(i)`` after ``warmup`` untimed ones."""
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(warmup, warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        fn(i)
        _sync(device)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _peak_mb(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def bare_step(d: Distiller):
    """The bare limit on the Distiller's own teacher, student, batch and optimiser settings."""
    x = d.sample_batch().detach()
    student = build_model(d.cfg.student, num_classes=d.info.num_classes,
                          in_channels=d.info.in_channels).to(d.device)
    opt = torch.optim.SGD(student.parameters(), lr=d.cfg.lr, momentum=0.9)

    def step(_i):
        with torch.no_grad(), torch.autocast(d.device.type, torch.bfloat16, enabled=d.device.type == "cuda"):
            t = d.teacher.model(x).float()
        with torch.autocast(d.device.type, torch.bfloat16, enabled=d.device.type == "cuda"):
            s = student(x).float()
        loss = kd_loss(s, t, d.tau)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def loop_rows(args, teacher: Path) -> list[dict]:
    rows = []
    for method in args.methods:
        for kdci in (False, True):
            cfg = DistillConfig(teacher=str(teacher), teacher_arch=args.teacher_arch, student=args.student,
                                dataset=args.dataset, data_root=args.data_root, method=method, kdci=kdci,
                                epochs=1, steps_per_epoch=args.warmup + args.steps + 1,
                                batch_size=args.batch_size, device=args.device, seed=0)
            d = Distiller(cfg)
            d.prepare()
            if d.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(d.device)
            ms = _timed(d.step, d.device, args.warmup, args.steps)
            row = {"method": method, "kdci": kdci, "ms_per_step": statistics.median(ms),
                   "steps_per_s": 1000 / statistics.median(ms), "peak_mb": _peak_mb(d.device)}
            if not kdci:
                bare = _timed(bare_step(d), d.device, args.warmup, args.steps)
                rows.append({"method": method, "kdci": None, "ms_per_step": statistics.median(bare),
                             "steps_per_s": 1000 / statistics.median(bare), "peak_mb": None})
            rows.append(row)
            print(f"  {method} kdci={'on' if kdci else 'off'}: {row['ms_per_step']:.1f} ms/step", flush=True)
    return rows


def synthesis_rows(args, teacher: Path) -> list[dict]:
    """Images per second of each generation method's synthesis round at its defaults (after its
    one-off preparation: Fast's warm-up rounds), ``args.rounds`` rounds timed."""
    rows = []
    for method in args.synthesis:
        cfg = DistillConfig(teacher=str(teacher), teacher_arch=args.teacher_arch, student=args.student,
                            dataset=args.dataset, data_root=args.data_root, method=method, kdci=False,
                            epochs=1, steps_per_epoch=10, device=args.device, seed=0,
                            preset=args.synthesis_preset,
                            batch_size=args.batch_size if args.synthesis_preset == "quick" else None)
        d = Distiller(cfg)
        d.prepare()
        images, seconds = 0, 0.0
        for _ in range(args.rounds):
            _sync(d.device)
            t0 = time.perf_counter()
            batch = d.method.synthesize(d.student)
            _sync(d.device)
            seconds += time.perf_counter() - t0
            images += len(batch)
        rows.append({"method": method, "preset": args.synthesis_preset, "images": images, "seconds": seconds, "images_per_s": images / seconds,
                     "params": {k: d.method.params[k] for k in ("synth_batch", "g_steps") if k in d.method.params}})
        print(f"  {method} synthesis: {images / seconds:.1f} images/s", flush=True)
    return rows


#: the data the dictionary is timed on; the speed-up of the torch path depends on it
GENERATORS = {
    "mixture": "D Gaussian centres N(0, 5^2) in D dimensions, unit noise (this script's own)",
    "separated": "100 well-separated centres N(0, 6^2) in D dimensions, unit noise",
}


def dictionary_features(kind: str, n: int, dim: int) -> torch.Tensor:
    """N x D logits-like features of the generator ``kind`` (seeded)."""
    gen = torch.Generator().manual_seed(0)
    count, spread = (dim, 5.0) if kind == "mixture" else (100, 6.0)
    centres = torch.randn(count, dim, generator=gen) * spread
    return centres[torch.randint(count, (n,), generator=gen)] + torch.randn(n, dim, generator=gen)


def torch_stages(feats: torch.Tensor, device) -> dict:
    """Seconds of each stage of the torch path on ``feats``: PCA, k-means++ seeding, the rest
    (Lloyd's iterations and the prototypes), as ``_build_in_torch`` runs them."""
    from kdci_core.kdci.torch_kmeans import kmeans_pp_init, pca_reduce

    _sync(device)
    t0 = time.perf_counter()
    reduced = pca_reduce(feats.float(), dictionary_module.PCA_VARIANCE, dictionary_module.PCA_MAX_COMPONENTS, None)
    _sync(device)
    t1 = time.perf_counter()
    x = reduced.float().contiguous()
    kmeans_pp_init(x, (x * x).sum(1), 128, torch.Generator().manual_seed(0))
    _sync(device)
    return {"pca_s": t1 - t0, "seeding_s": time.perf_counter() - t1}


def dictionary_rows(args, device) -> list[dict]:
    """The dictionary at each size and data generator, by the engine's torch path and by
    scikit-learn's in the same run (the ratio holds for that data only), with the torch path's
    stages."""
    rows = []
    saved = dict(dictionary_module.TORCH_MIN_SAMPLES)
    paths = ("torch", "sklearn") if args.dictionary_path == "both" else (args.dictionary_path,)
    try:
        for kind in args.dictionary_data:
            for n, dim in args.dictionary:
                feats = dictionary_features(kind, n, dim).to(device)
                row = {"data": kind, "n": n, "d": dim}
                for path in paths:
                    if path != "auto":  # force one path
                        limit = 10**12 if path == "sklearn" else 1
                        dictionary_module.TORCH_MIN_SAMPLES.update(cpu=limit, cuda=limit)
                    used = "torch" if dictionary_module.use_torch_path(feats) else "sklearn"
                    _sync(device)
                    t0 = time.perf_counter()
                    d = build_confounder_dictionary(feats, 128, seed=0)
                    _sync(device)
                    row[f"{used}_s"] = time.perf_counter() - t0
                    row[f"{used}_k"] = int(d.prototypes.shape[0])
                    dictionary_module.TORCH_MIN_SAMPLES.update(saved)
                    print(f"  dictionary {kind} {n} x {dim}, K=128 ({used}): {row[f'{used}_s']:.2f} s", flush=True)
                if "torch_s" in row:
                    row.update(torch_stages(feats, device))
                    row["lloyd_s"] = max(0.0, row["torch_s"] - row["pca_s"] - row["seeding_s"])
                if "torch_s" in row and "sklearn_s" in row:
                    row["torch_over_sklearn"] = row["torch_s"] / row["sklearn_s"]
                rows.append(row)
    finally:
        dictionary_module.TORCH_MIN_SAMPLES.update(saved)
    return rows


def print_dictionary(rows: list[dict]) -> None:
    def num(row, key, spec=".2f"):
        return f"{row[key]:{spec}}" if key in row else "-"
    print(f"\n{'data':<10} {'N x D':<14} {'sklearn s':>9} {'torch s':>8} {'torch/sk':>8} "
          f"{'PCA s':>6} {'seed s':>7} {'Lloyd s':>8}")
    for r in rows:
        print(f"{r['data']:<10} {str(r['n']) + ' x ' + str(r['d']):<14} {num(r, 'sklearn_s'):>9} "
              f"{num(r, 'torch_s'):>8} {num(r, 'torch_over_sklearn'):>8} {num(r, 'pca_s'):>6} "
              f"{num(r, 'seeding_s'):>7} {num(r, 'lloyd_s'):>8}")
    for kind in sorted({r["data"] for r in rows}):
        print(f"  {kind}: {GENERATORS[kind]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fashion = SHARED / "data" / "fashion-mnist"
    ap.add_argument("--dataset", default="fashion-mnist" if fashion.exists() else "digits")
    ap.add_argument("--data-root", default=str(fashion) if fashion.exists() else None)
    ap.add_argument("--teacher-arch", default="lenet5")
    ap.add_argument("--student", default="lenet5_half")
    ap.add_argument("--methods", nargs="+", default=["dfnd", "deepinv"])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--dictionary", nargs="*", type=lambda s: tuple(int(v) for v in s.split("x")),
                    default=[(60_000, 10), (600_000, 100)], help="N x D sizes, e.g. 60000x10")
    ap.add_argument("--synthesis", nargs="*", default=["deepinv", "fast"],
                    help="generation methods whose synthesis rounds are timed (images per second)")
    ap.add_argument("--rounds", type=int, default=3, help="synthesis rounds timed per method")
    ap.add_argument("--synthesis-preset", choices=("quick", "paper"), default="quick",
                    help="the preset whose synthesis settings are timed (paper: the reference "
                         "scripts' batch 256 and iterations, e.g. DeepInv's 1000 a round)")
    ap.add_argument("--kdci-scores", choices=("chunked", "plain"), default="chunked",
                    help="plain: KDCI's attention scores by the plain formula (autograd keeps the "
                         "B x K x d_m tensors), to measure what the chunked scores save")
    ap.add_argument("--dictionary-path", choices=("both", "auto", "sklearn", "torch"), default="both",
                    help="both: time the torch path and scikit-learn's on the same data in this run; "
                         "auto: the engine's choice by N (kdci.dictionary.TORCH_MIN_SAMPLES)")
    ap.add_argument("--dictionary-data", nargs="+", choices=sorted(GENERATORS), default=sorted(GENERATORS),
                    help="the data generators the dictionary is timed on (the speed-up depends on them)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.kdci_scores == "plain":
        intervention.additive_scores = additive_scores_reference
    device = resolve_device(args.device)
    info = load_dataset(args.dataset, args.data_root).info
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        teacher = Path(tmp) / f"{args.teacher_arch}.safetensors"
        torch.manual_seed(0)
        save_checkpoint(build_model(args.teacher_arch, num_classes=info.num_classes,
                                    in_channels=info.in_channels), teacher)
        loops = loop_rows(args, teacher)
        synthesis = synthesis_rows(args, teacher)
    dictionary = dictionary_rows(args, device)
    print(f"\nthroughput on {machine()}, device {device}; {args.dataset} {args.teacher_arch} -> "
          f"{args.student}, batch {args.batch_size}, median of {args.steps} steps, KDCI scores "
          f"{args.kdci_scores}")
    print(f"{'method':<9} {'step':<10} {'ms/step':>8} {'steps/s':>8} {'x bare':>7} {'on/off':>7} {'peak MB':>8}")
    for m in args.methods:
        bare, off, on = (next(r for r in loops if r["method"] == m and r["kdci"] is k) for k in (None, False, True))
        for name, r in (("bare", bare), ("KDCI off", off), ("KDCI on", on)):
            ratio = f"{on['ms_per_step'] / off['ms_per_step']:7.2f}" if r is on else ""
            peak = f"{r['peak_mb']:8.0f}" if r["peak_mb"] else ""
            print(f"{m:<9} {name:<10} {r['ms_per_step']:8.1f} {r['steps_per_s']:8.1f} "
                  f"{r['ms_per_step'] / bare['ms_per_step']:7.2f} {ratio:>7} {peak:>8}")
    for r in synthesis:
        print(f"synthesis {r['method']} ({', '.join(f'{k} {v}' for k, v in r['params'].items())}): "
              f"{r['images_per_s']:.1f} images/s ({r['images']} images in {r['seconds']:.1f} s)")
    if len(synthesis) == 2:
        print(f"synthesis {synthesis[1]['method']} / {synthesis[0]['method']}: "
              f"{synthesis[1]['images_per_s'] / synthesis[0]['images_per_s']:.1f}x images per second")
    print_dictionary(dictionary)
    out = args.out or OUT / f"throughput-{device.type}.json"
    write_json(out, {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                     "machine": machine(), "device": str(device), "total_time_s": time.time() - started,
                     "loop": loops, "synthesis": synthesis, "dictionary": dictionary})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
