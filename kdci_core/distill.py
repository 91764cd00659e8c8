"""THE distillation loop, shared by every DFKD method, with KDCI plugged in at one place.

Per student step: the method may make new substitution data (generation methods, every
``synth_every`` steps; KDCI's dictionary is then rebuilt from it), the method gives a batch,
the frozen teacher labels it, and the student's logits are compensated by KDCI (when on)
*before* every student-training loss that compares student with teacher: the KD loss and the
method's own student terms. Synthesis-side terms (e.g. DeepInversion's adversarial term) see the
raw student: they make data to challenge the model that will be deployed (docs/KDCI_IMPLEMENTATION.md).
Accuracy is always reported on the raw student (the deployed model).
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from .checkpointing import load_object_state, object_state, rng_state, set_rng_state
from .config import DistillConfig
from .data import load_dataset
from .device import autocast, peak_memory_mb, reset_peak_memory, resolve_device, seed_everything
from .errors import InputError
from .kdci import KDCIPlugin
from .losses import kd_loss
from .methods import METHODS, MethodContext
from .models import build_model
from .progress import Progress, report
from .runstore import Run, RunStore
from .teachers import TeacherBundle, builtin_teacher, load_teacher
from .training import evaluate, parameter_count, predict_logits


def load_run_teacher(cfg: DistillConfig, info, device, progress: Progress = None) -> TeacherBundle:
    if cfg.teacher == "builtin":
        return builtin_teacher(device=device, progress=progress)
    bundle = load_teacher(cfg.teacher, cfg.teacher_arch, in_channels=info.in_channels, device=device)
    if bundle.num_classes != info.num_classes:
        raise InputError(f"--teacher {cfg.teacher}: class count mismatch: the checkpoint has "
                         f"{bundle.num_classes} classes, dataset {info.name} has {info.num_classes}")
    return bundle


class Distiller:
    """Builds everything a run needs from a config, then runs the loop."""

    def __init__(self, cfg: DistillConfig, *, progress: Progress = None):
        self.cfg = cfg.validate()
        self.progress = progress
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        self.data = load_dataset(cfg.dataset, cfg.data_root)
        info = self.info = self.data.info
        self.teacher = load_run_teacher(cfg, info, self.device, progress)
        method_cls = METHODS.get(cfg.method)
        self.tau = float(cfg.tau or method_cls.default_tau)
        self.k = int(cfg.k or method_cls.default_k)
        seed_everything(cfg.seed)  # the built-in teacher's first training must not shift the stream
        self.method = method_cls(MethodContext(
            teacher=self.teacher.model, info=info, device=self.device, seed=cfg.seed, tau=self.tau,
            wild_data=cfg.wild_data, data_root=cfg.data_root, progress=progress,
            params=dict(cfg.method_params)))
        if cfg.kdci and self.method.kind == "generation" and self.k > self.method.min_dictionary_samples():
            raise InputError(f"--k {self.k}: K must not exceed the {self.method.min_dictionary_samples()} "
                             f"images of each synthetic mini-batch ({cfg.method}.synth_batch)")
        self.student = build_model(cfg.student, num_classes=info.num_classes,
                                   in_channels=info.in_channels).to(self.device)
        self.dictionary_model = self.teacher.model
        self.plugin = None
        if cfg.kdci:
            prototype_dim = None
            if cfg.dictionary_source:
                src = load_teacher(cfg.dictionary_source, cfg.dictionary_source_arch,
                                   in_channels=info.in_channels, device=self.device)
                self.dictionary_model, prototype_dim = src.model, src.num_classes
            self.plugin = KDCIPlugin(info.num_classes, k=self.k, ablation=cfg.ablation,
                                     attn_dim=cfg.attn_dim, fusion=cfg.fusion, pca_dim=cfg.pca_dim,
                                     prototype_dim=prototype_dim, seed=cfg.seed).to(self.device)
        params = list(self.student.parameters())
        for module in ([self.plugin] if self.plugin else []) + self.method.student_modules():
            params += list(module.parameters())
        self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=5e-4)
        self.total_steps = cfg.epochs * cfg.steps_per_epoch
        #: called with (step, images) whenever the method makes new substitution data (diagnostics)
        self.on_substitution: Callable[[int, torch.Tensor], None] | None = None
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, self.total_steps)

    # --- pieces of the loop -------------------------------------------------------------------
    def student_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The student's logits as every student-training loss sees them: KDCI-compensated."""
        s = self.student(x)
        return self.plugin(s) if self.plugin is not None else s

    def rebuild_dictionary(self, data: torch.Tensor) -> None:
        features = predict_logits(self.dictionary_model, data, device=self.device)
        self.plugin.rebuild(features.to(self.device))

    def step(self, step: int) -> dict:
        self.student.eval()
        new = self.method.refresh(step, self.student)
        self.student.train()
        if new is not None and self.on_substitution is not None:
            self.on_substitution(step, new)
        if new is not None and self.plugin is not None:
            self.rebuild_dictionary(new)
        x = self.method.sample(self.cfg.batch_size)
        with torch.no_grad(), autocast(self.device, self.cfg.amp):
            t = self.teacher.model(x).float()
        with autocast(self.device, self.cfg.amp):
            s_hat = self.student_logits(x).float()
        terms = {"kd": kd_loss(s_hat, t, self.tau), **self.method.student_losses(x, s_hat, t)}
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}: lower --lr")
        self.optimizer.zero_grad(set_to_none=True)  # also clears grads a synthesis step left
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return {name: float(v.detach()) for name, v in terms.items()} | {"loss": float(loss.detach())}

    # --- resumable state ---------------------------------------------------------------------
    def training_state(self, step: int, elapsed: float, history: list[dict]) -> dict:
        """Everything needed to continue after ``step`` student steps (see checkpointing.py)."""
        return {"step": step, "elapsed": elapsed, "history": history,
                "student": self.student.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "plugin": self.plugin.state_dict() if self.plugin is not None else None,
                "method": object_state(self.method), "rng": rng_state()}

    def restore(self, state: dict) -> None:
        self.student.load_state_dict(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.plugin is not None and state["plugin"] is not None:
            self.plugin.load_state_dict(state["plugin"])
        load_object_state(self.method, state["method"], self.device)
        set_rng_state(state["rng"])

    def prepare(self) -> None:
        """The method's one-off work and, for sampling methods, KDCI's one dictionary."""
        self.method.prepare()
        if self.plugin is not None and self.method.kind == "sampling":
            n = len(self.method.substitution_data())
            if self.k > n:
                raise InputError(f"--k {self.k}: K must not exceed the {n} selected substitution images")
            self.rebuild_dictionary(self.method.substitution_data())

    def run(self, *, run: Run | None = None, on_epoch: Callable[[dict], None] | None = None,
            resume: dict | None = None,
            on_checkpoint: Callable[[dict], None] | None = None) -> dict:
        """Distil; ``resume`` continues from a ``training_state``; ``on_checkpoint`` receives a
        fresh ``training_state`` after every epoch (the worker saves it)."""
        cfg, info = self.cfg, self.info
        started = time.time()
        reset_peak_memory(self.device)
        teacher_eval = evaluate(self.teacher.model, self.data.test, num_classes=info.num_classes,
                                device=self.device)
        start, history, offset = 0, [], 0.0
        if resume is not None:
            self.restore(resume)
            start, history, offset = resume["step"], list(resume["history"]), resume["elapsed"]
            started -= offset
        else:
            self.prepare()
        sums, count = {}, 0
        for step in range(start, self.total_steps):
            for name, value in self.step(step).items():
                sums[name] = sums.get(name, 0.0) + value
            count += 1
            report(self.progress, step + 1, self.total_steps, f"distill {cfg.method} kdci={'on' if cfg.kdci else 'off'}")
            if (step + 1) % cfg.steps_per_epoch == 0:
                ev = evaluate(self.student, self.data.test, num_classes=info.num_classes, device=self.device)
                record = {"epoch": (step + 1) // cfg.steps_per_epoch, "step": step + 1,
                          "student_accuracy": ev.accuracy, "wall_time_s": time.time() - started,
                          "lr": self.scheduler.get_last_lr()[0],
                          **{name: total / count for name, total in sums.items()}}
                sums, count = {}, 0
                history.append(record)
                if run is not None:
                    run.append_metrics(record)
                if on_checkpoint is not None:
                    on_checkpoint(self.training_state(step + 1, time.time() - started, history))
                if on_epoch is not None:
                    on_epoch(record)
        final = evaluate(self.student, self.data.test, num_classes=info.num_classes, device=self.device)
        result = {
            "method": cfg.method, "kdci": cfg.kdci, "dataset": cfg.dataset,
            "teacher_arch": self.teacher.arch, "student_arch": cfg.student, "seed": cfg.seed,
            "device": str(self.device), "teacher_accuracy": teacher_eval.accuracy,
            "student_accuracy": final.accuracy, "per_class_accuracy": final.per_class,
            "history": history, "wall_time_s": time.time() - started, "resumed_from_step": start or None,
            "peak_memory_mb": peak_memory_mb(self.device), "k": self.k if cfg.kdci else None,
            "tau": self.tau, "student_parameters": parameter_count(self.student),
            "teacher_parameters": self.teacher.parameter_count, "config": cfg.to_dict(),
        }
        if self.plugin is not None:
            d = self.plugin.dictionary
            result["dictionary"] = {"k": int(d.prototypes.shape[0]),
                                    "proportions": d.proportions.tolist(),
                                    "rebuilds": int(self.plugin.rebuild_count)}
        return result


def distill(cfg: DistillConfig, *, store: RunStore | None = None, progress: Progress = None,
            on_epoch: Callable[[dict], None] | None = None, run_name: str | None = None) -> dict:
    """Run one distillation end to end in this process, recorded in the run store (with
    heartbeats and per-epoch checkpoints, so it can be resumed); returns the result dict."""
    from .workers.worker import execute

    store = store or RunStore()
    distiller = Distiller(cfg, progress=progress)  # input errors surface before a run exists
    run = store.create(cfg.to_dict(), name=run_name)
    result = execute(run, home=store.home, backend="inline", progress=progress, on_epoch=on_epoch,
                     distiller=distiller)
    if result is None:
        raise KeyboardInterrupt(f"run {run.run_id} was cancelled")
    return result
