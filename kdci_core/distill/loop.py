"""THE distillation loop, shared by every DFKD method, with KDCI plugged in at one place.

Per student step: the method may make new substitution data (generation methods, every
``synth_every`` steps; KDCI's dictionary is then rebuilt from it), the method gives a batch,
the frozen teacher labels it, and the student's logits are compensated by KDCI (when on)
*before* every student-training loss that compares student with teacher: the KD loss and the
method's own student terms. Synthesis-side terms (e.g. DeepInversion's adversarial term) see the
raw student: they make data to challenge the model that will be deployed (docs/KDCI_IMPLEMENTATION.md).
Accuracy is always reported on the raw student (the deployed model).

The loop records nothing itself: every event (new substitution data, a step, an epoch, a
checkpointable state, the result) goes to its callbacks (:mod:`.callbacks`), which decide where
records go. It imports nothing from the run store, the workers, reports or figures.
"""

from __future__ import annotations

import time
from typing import Iterable

import torch

from ..common.device import (autocast, peak_memory_mb, reset_peak_memory, resolve_device,
                             seed_everything)
from ..common.errors import InputError
from ..common.progress import Progress
from ..common.system import SystemSampler
from ..data.augment import student_augmentation
from ..kdci import KDCIPlugin, inert_reason, kdci_telemetry
from ..kdci.telemetry import compensated_predictions
from ..methods import METHODS, MethodContext, check_teacher_serves
from ..methods.losses import kd_loss
from ..models import build_model
from ..models.compiled import CompiledOrEager
from ..models.evaluation import evaluate, evaluate_logits, parameter_count, predict_logits
from ..teachers import (TeacherBundle, is_onnx_path, load_named_teacher, load_onnx_teacher,
                        load_teacher, teacher_capabilities)
from ..teachers.input_spec import load_at_spec, spec_of
from .callbacks import Callback, CallbackList
from .config import DistillConfig
from .corrections import BalancedResampler, ClassReweighter
from .meters import LossMeans
from .records import EpochRecord, FitResult
from .state import load_object_state, object_state, rng_state, set_rng_state


def load_run_teacher(cfg: DistillConfig, info, device, progress: Progress = None) -> TeacherBundle:
    """The teacher ``cfg`` names (built-in, a checkpoint or an ONNX black box), checked against
    the dataset ``info`` and against what ``cfg.method`` needs from it (``methods.needs``)."""
    bundle = load_named_teacher(cfg.teacher, cfg.teacher_arch, num_classes=info.num_classes,
                                in_channels=info.in_channels, dataset=info.name, device=device,
                                progress=progress, image_size=info.image_size)
    check_teacher_serves(cfg.method, teacher_capabilities(bundle.model))
    return bundle


class Distiller:
    """Builds everything a run needs from a config, then runs the loop (:meth:`fit`).

    ``progress`` goes to the method's long steps (synthesis, pool scoring) and the built-in
    teacher's first training; ``callbacks`` receive the loop's events (see :mod:`.callbacks`)."""

    def __init__(self, cfg: DistillConfig, *, progress: Progress = None,
                 callbacks: Iterable[Callback] = ()):
        self.cfg = cfg = cfg.resolve(resources=False)  # memory was checked when the run was created
        self.progress = progress
        self.callbacks = CallbackList(callbacks)
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        # the data at the teacher's input spec (size, channels, normalisation; input_spec.py)
        self.data, self.input_spec = load_at_spec(cfg.dataset, cfg.data_root, spec_of(cfg))
        info = self.info = self.data.info
        self.teacher = load_run_teacher(cfg, info, self.device, progress)
        method_cls = METHODS.get(cfg.method)
        self.tau = float(cfg.tau or method_cls.default_tau)
        self.k = cfg.k if cfg.k == "auto" else int(cfg.k or method_cls.default_k)
        seed_everything(cfg.seed)  # the built-in teacher's first training must not shift the stream
        self.augment = student_augmentation(cfg.augment or info.augment, info,
                                            torch.Generator().manual_seed(cfg.seed + 104729))
        self.teacher_eval = evaluate(self.teacher.model, self.data.test, num_classes=info.num_classes,
                                     device=self.device)
        self.method = method_cls(MethodContext(
            teacher=self.teacher.model, info=info, device=self.device, seed=cfg.seed, tau=self.tau,
            wild_data=cfg.wild_data, data_root=cfg.data_root, progress=progress,
            params=dict(cfg.method_params), teacher_accuracy=self.teacher_eval.accuracy,
            augment=self.augment))
        if cfg.kdci and self.k != "auto" and self.method.kind == "generation" \
                and self.k > self.method.min_dictionary_samples():
            raise InputError(f"--k {self.k}: K must not exceed the {self.method.min_dictionary_samples()} "
                             f"images of each synthetic mini-batch ({cfg.method}.synth_batch)")
        self.student = build_model(cfg.student, num_classes=info.num_classes,
                                   in_channels=info.in_channels,
                                   image_size=info.image_size).to(self.device)  # the teacher's
        self.dictionary_model = self.teacher.model
        self.plugin = None
        if cfg.kdci:
            prototype_dim = None
            if cfg.dictionary_source:
                if is_onnx_path(cfg.dictionary_source):  # the dictionary reads logits only
                    src = load_onnx_teacher(cfg.dictionary_source, device=self.device,
                                            in_channels=info.in_channels, image_size=info.image_size)
                else:
                    src = load_teacher(cfg.dictionary_source, cfg.dictionary_source_arch,
                                       in_channels=info.in_channels, device=self.device,
                                       image_size=info.image_size)
                self.dictionary_model, prototype_dim = src.model, src.num_classes
            self.plugin = KDCIPlugin(info.num_classes, k=self.k, ablation=cfg.ablation,
                                     attn_dim=cfg.attn_dim, fusion=cfg.fusion, pca_dim=cfg.pca_dim,
                                     prototype_dim=prototype_dim, seed=cfg.seed,
                                     attn_input=cfg.attn_input, tau=self.tau,
                                     attn_init_gain=cfg.attn_init_gain).to(self.device)
        #: the student step's forwards, compiled under --compile (models.compiled: eager fallback)
        self.student_forward = CompiledOrEager(self.student, cfg.compile, what="student")
        # a black box (no gradients: an onnxruntime session) is no torch graph to compile
        self.teacher_forward = CompiledOrEager(
            self.teacher.model, cfg.compile and "gradients" in teacher_capabilities(self.teacher.model),
            what="teacher")
        self.optimizer = torch.optim.SGD(self.param_groups(), lr=cfg.lr, momentum=0.9)
        #: the method's own optimisers of extra trainable modules (DFND's transition matrix)
        self.extra_optimizers = self.method.student_optimizers()
        self.correction_gen = torch.Generator().manual_seed(cfg.seed + 130363)
        self.resampler = BalancedResampler(info.num_classes, self.correction_gen) \
            if cfg.correction == "balanced" else None
        self.reweighter = ClassReweighter(info.num_classes) if cfg.correction == "reweight" else None
        self.probe = self._probe_images()
        self.total_steps = cfg.epochs * cfg.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, self.total_steps)

    def param_groups(self) -> list[dict]:
        """The student's SGD groups: the student and the method's extra modules at the student's
        weight decay, KDCI's attention at its own (``kdci_weight_decay``)."""
        cfg = self.cfg
        groups = [{"name": "student", "params": list(self.student.parameters()),
                   "weight_decay": cfg.weight_decay}]
        extra = [p for m in self.method.student_modules() for p in m.parameters()]
        if extra:
            groups.append({"name": "method", "params": extra, "weight_decay": cfg.weight_decay})
        if self.plugin is not None:
            groups.append({"name": "kdci", "params": list(self.plugin.parameters()),
                           "weight_decay": cfg.kdci_weight_decay})
        return groups

    def optimizer_summary(self) -> dict:
        """What each trained part was optimised with (recorded in every run's result)."""
        out = {g["name"]: {"optimizer": "SGD", "lr": g.get("initial_lr", g["lr"]),
                           "momentum": g["momentum"], "weight_decay": g["weight_decay"],
                           "schedule": "cosine"} for g in self.optimizer.param_groups}
        for opt in self.extra_optimizers:
            for g in opt.param_groups:
                out[g.get("name", type(opt).__name__)] = {
                    "optimizer": type(opt).__name__, "lr": g["lr"],
                    "weight_decay": g.get("weight_decay", 0.0), "schedule": "constant"}
        return out

    # --- pieces of the loop -------------------------------------------------------------------
    def student_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The student's logits as every student-training loss sees them: KDCI-compensated."""
        s = self.student_forward(x)
        return self.plugin(s) if self.plugin is not None else s

    def rebuild_dictionary(self, data: torch.Tensor) -> None:
        features = predict_logits(self.dictionary_model, data, device=self.device)
        self.plugin.rebuild(features.to(self.device))

    def set_progress(self, progress: Progress) -> None:
        """Where the method's long steps report (and, through it, may be interrupted)."""
        self.progress = self.method.ctx.progress = progress

    def new_substitution(self, step: int, images: torch.Tensor) -> None:
        """The one place new substitution data arrive: callbacks see them, KDCI rebuilds on them."""
        self.callbacks.dispatch("on_substitution", step, images)
        if self.plugin is not None:
            self.rebuild_dictionary(images)

    def step(self, step: int) -> dict:
        """One student step (and, when the method makes new data at this step, the synthesis)."""
        self.student.eval()
        new = self.method.refresh(step, self.student)
        self.student.train()
        if new is not None:
            self.new_substitution(step, new)
        x = self.sample_batch()
        if self.augment is not None and not self.method.augments_itself:
            x = self.augment(x)  # the teacher labels the same augmented batch
        with torch.no_grad(), autocast(self.device, self.cfg.amp):
            t = self.teacher_forward(x).float()
        with autocast(self.device, self.cfg.amp):
            s_hat = self.student_logits(x).float()
        weights = self.reweighter(t) if self.reweighter is not None else None
        terms = {"kd": kd_loss(s_hat, t, self.tau, weights=weights),
                 **self.method.student_losses(x, s_hat, t, weights=weights)}
        loss = sum(terms.values())
        self.optimizer.zero_grad(set_to_none=True)  # also clears grads a synthesis step left
        for opt in self.extra_optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        for opt in self.extra_optimizers:
            opt.step()
        self.scheduler.step()
        # device tensors, not floats: reading them here would sync the host every step
        return {name: v.detach() for name, v in terms.items()} | {"loss": loss.detach()}

    def sample_batch(self) -> torch.Tensor:
        """The method's batch for one student step, class-balanced under ``correction=balanced``."""
        if self.resampler is None:
            return self.method.sample(self.cfg.batch_size)
        return self.resampler(self.method.sample, self.teacher.model, self.cfg.batch_size)

    def _probe_images(self, n: int = 256) -> torch.Tensor:
        """A fixed subset of test images on which KDCI's telemetry is measured every epoch."""
        images = self.data.test.images
        idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:n]
        return images[idx]

    def kdci_record(self, test_logits: torch.Tensor) -> dict:
        """KDCI's telemetry for an epoch record (``kdci.telemetry``) and the compensated accuracy
        against the current dictionary (the deployed student stays the raw one)."""
        if self.plugin is None or not self.plugin.has_dictionary:
            return {}
        s = predict_logits(self.student, self.probe, device=self.device).to(self.device)
        t = predict_logits(self.teacher.model, self.probe, device=self.device).to(self.device)
        record = kdci_telemetry(self.plugin, s, t)
        preds = compensated_predictions(self.plugin, test_logits.to(self.device)).cpu()
        record["compensated_accuracy"] = float(100.0 * (preds == self.data.test.labels).float().mean())
        record["kdci_inert"] = inert_reason(record) is not None
        return record

    # --- resumable state ---------------------------------------------------------------------
    def training_state(self, step: int, elapsed: float, history: list[EpochRecord]) -> dict:
        """Everything needed to continue after ``step`` student steps (see :mod:`.state`); the
        history as its JSON lines (what a resume rewrites ``metrics.jsonl`` from)."""
        return {"step": step, "elapsed": elapsed, "history": [r.to_json() for r in history],
                "student": self.student.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "plugin": self.plugin.state_dict() if self.plugin is not None else None,
                "method": object_state(self.method), "rng": rng_state(),
                "loop_rng": {"augment": self.augment.rng.get_state() if self.augment is not None else None,
                             "correction": self.correction_gen.get_state()},
                "class_shares": self.reweighter.shares if self.reweighter is not None else None}

    def restore(self, state: dict) -> None:
        self.student.load_state_dict(state["student"])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as exc:  # e.g. one parameter group: a checkpoint of release 0.1
            raise InputError(f"checkpoint: its optimiser state does not fit this release's ({exc}); "
                             "resume it with the release that wrote it, or start a new run") from None
        self.scheduler.load_state_dict(state["scheduler"])
        if self.plugin is not None and state["plugin"] is not None:
            self.plugin.load_state_dict(state["plugin"])
        load_object_state(self.method, state["method"], self.device)
        set_rng_state(state["rng"])
        loop_rng = state.get("loop_rng") or {}
        if self.augment is not None and loop_rng.get("augment") is not None:
            self.augment.rng.set_state(loop_rng["augment"])
        if loop_rng.get("correction") is not None:
            self.correction_gen.set_state(loop_rng["correction"])
        if self.reweighter is not None and state.get("class_shares") is not None:
            self.reweighter.shares = state["class_shares"].to(self.device)

    def prepare(self) -> None:
        """The method's one-off work; a sampling method's selection is its substitution data
        (callbacks see it, KDCI builds its one dictionary from it)."""
        self.method.prepare()
        if self.method.kind == "sampling":
            data = self.method.substitution_data()
            if self.plugin is not None and self.k != "auto" and self.k > len(data):
                raise InputError(f"--k {self.k}: K must not exceed the {len(data)} selected substitution images")
            self.new_substitution(0, data)

    def fit(self, *, resume: dict | None = None, callbacks: Iterable[Callback] = (),
            max_steps: int | None = None) -> FitResult:
        """Distil and return the result (built whole here; callbacks read it, never add to it); ``resume`` continues from a :meth:`training_state`.

        ``callbacks`` join the Distiller's own for this fit. The loop ends after the planned
        ``epochs x steps_per_epoch`` steps, at global step ``max_steps`` if that comes first,
        or as soon as a callback's ``should_stop`` is true (checked before every step)."""
        outer, self.callbacks = self.callbacks, self.callbacks + callbacks
        try:
            return self._fit(resume, max_steps)
        finally:
            self.callbacks = outer

    def _fit(self, resume: dict | None, max_steps: int | None) -> FitResult:
        cfg, info, cbs = self.cfg, self.info, self.callbacks
        started = time.time()
        reset_peak_memory(self.device)
        teacher_eval = self.teacher_eval
        start, history = 0, []
        system = SystemSampler(self.device)
        cbs.dispatch("on_fit_start", self)
        if resume is not None:
            self.restore(resume)
            start, history = resume["step"], [EpochRecord.from_json(r) for r in resume["history"]]
            started -= resume["elapsed"]
        else:
            self.prepare()
        stop = self.total_steps if max_steps is None else min(self.total_steps, int(max_steps))
        epoch_terms, window = LossMeans(), LossMeans()
        for step in range(start, stop):
            if cbs.should_stop:
                break
            metrics = self.step(step)
            epoch_terms.add(metrics)
            window.add(metrics)
            cbs.dispatch("on_step_end", step, metrics)
            if cfg.log_every and (step + 1) % cfg.log_every == 0:
                cbs.dispatch("on_log", {"step": step + 1, "epoch": (step + 1) / cfg.steps_per_epoch,
                                        "wall_time_s": time.time() - started,
                                        "lr": self.scheduler.get_last_lr()[0], **window.pop(step)})
            if (step + 1) % cfg.steps_per_epoch == 0:
                test_logits = predict_logits(self.student, self.data.test.images, device=self.device)
                ev = evaluate_logits(test_logits, self.data.test.labels, num_classes=info.num_classes)
                record = EpochRecord(epoch=(step + 1) // cfg.steps_per_epoch, step=step + 1,
                                     student_accuracy=ev.accuracy, wall_time_s=time.time() - started,
                                     lr=self.scheduler.get_last_lr()[0], losses=epoch_terms.pop(step),
                                     kdci=self.kdci_record(test_logits), system=system.sample())
                history.append(record)
                cbs.dispatch("on_epoch_end", record)
                cbs.dispatch("on_checkpoint", self.training_state(step + 1, time.time() - started, history))
        final = evaluate(self.student, self.data.test, num_classes=info.num_classes, device=self.device)
        dictionary = telemetry = None
        if self.plugin is not None:
            d = self.plugin.dictionary
            dictionary = {"k": int(d.prototypes.shape[0]), "proportions": d.proportions.tolist(),
                          "rebuilds": int(self.plugin.rebuild_count)}
            last = self.kdci_record(predict_logits(self.student, self.data.test.images, device=self.device))
            telemetry = last | {"inert_reason": inert_reason(last)}
        result = FitResult(
            method=cfg.method, kdci=cfg.kdci, dataset=cfg.dataset, teacher_arch=self.teacher.arch,
            student_arch=cfg.student, seed=cfg.seed, device=str(self.device),
            teacher_accuracy=teacher_eval.accuracy, teacher_sha256=self.teacher.sha256,
            student_accuracy=final.accuracy, per_class_accuracy=final.per_class,
            prediction_counts=torch.bincount(torch.as_tensor(final.predictions),
                                             minlength=info.num_classes).tolist(),
            class_names=[str(c) for c in info.class_names], history=tuple(history),
            wall_time_s=time.time() - started, resumed_from_step=start or None,
            peak_memory_mb=peak_memory_mb(self.device),
            # the K in use (chosen by the K curve under --k auto)
            k=(self.plugin.k if self.plugin is not None else self.k) if cfg.kdci else None,
            tau=self.tau, student_parameters=parameter_count(self.student),
            teacher_parameters=self.teacher.parameter_count, config=cfg.to_dict(),
            augment=cfg.augment or info.augment, optimizer=self.optimizer_summary(),
            input_spec=self.input_spec.to_dict(),
            compiled={"student": self.student_forward.active, "teacher": self.teacher_forward.active,
                      "fallback": self.student_forward.fallback_reason or self.teacher_forward.fallback_reason}
            if cfg.compile else None,
            dictionary=dictionary, kdci_telemetry=telemetry)
        cbs.dispatch("on_fit_end", result)
        return result

