"""Diagnoses kept in the run store, so the substitution data outlive the dashboard's process.

Making a method's substitution data takes seconds to minutes; a server restart used to lose it.
Each diagnosis is one folder ``$KDCI_HOME/diagnoses/<teacher>-<dataset>/<method>/`` (the
teacher: its file's sha256, or ``builtin``): the tensors (images, rounds, teacher logits, class
proportions, the dictionary) in one safetensors file, everything else in ``diagnosis.json``.

The tensors file is named by its content and written first, then the JSON that names it
(atomic renames both), so a reader sees an old pair or a new pair, never a mix. The reference
(test split, teacher model) is not kept: a diagnosis read back has ``reference=None``.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..common.errors import InputError
from ..common.jsonio import atomic_write_bytes, atomic_write_json, read_json
from ..common.paths import file_sha256, kdci_home
from ..data import DatasetInfo
from ..distill import DistillConfig
from ..kdci import ConfounderDictionary
from ..kdci.kcurve import KCurve
from ..methods import METHODS
from .diagnose import ClassBalance, Diagnosis
from .fid import FIDResult
from .proportions import imbalance
from .substitution import SubstitutionData

FORMAT = 1
JSON_NAME = "diagnosis.json"
_TEACHER = re.compile(r"builtin|[0-9a-f]{64}")
_DATASET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TENSORS = re.compile(r"tensors-[0-9a-f]{16}\.safetensors")
#: what must agree between a saved diagnosis and the teacher it is looked up for
SAME_TEACHER_FIELDS = ("teacher_arch", "dataset", "data_root")
#: one writer at a time in this process (the dashboard's sessions are threads, and the atomic
#: writes' temporary names are per process)
_WRITE_LOCK = threading.Lock()


def teacher_id(cfg: DistillConfig, sha256: str | None = None) -> str:
    """``builtin``, or the sha256 of the teacher file (``sha256`` when the caller knows it)."""
    if cfg.teacher == "builtin":
        return "builtin"
    digest = sha256 or file_sha256(cfg.teacher)
    if digest is None:
        raise InputError(f"teacher: expected an existing checkpoint file, found nothing at {cfg.teacher!r}")
    return digest


def diagnoses_dir(teacher: str, dataset: str, home: Path | str | None = None) -> Path:
    """The folder of one teacher's diagnoses on one dataset (one subfolder per method)."""
    if not _TEACHER.fullmatch(str(teacher)):
        raise InputError(f"teacher: expected 'builtin' or a sha256 (64 hex digits), found {teacher!r}")
    if not _DATASET.fullmatch(str(dataset)):
        raise InputError(f"dataset: expected a dataset name (letters, digits, '._-'), found {dataset!r}")
    return Path(home or kdci_home()) / "diagnoses" / f"{teacher}-{dataset}"


def _tensors(diag: Diagnosis) -> dict[str, torch.Tensor]:
    d, bal, dic = diag.data, diag.balance, diag.dictionary
    out = {"images": d.images, "rounds": d.rounds, "teacher_logits": d.teacher_logits,
           "substitution": torch.from_numpy(np.asarray(bal.substitution, dtype=np.float64)),
           "original": torch.from_numpy(np.asarray(bal.original, dtype=np.float64)),
           "prototypes": dic.prototypes, "proportions": dic.proportions, "labels": dic.labels}
    if bal.by_round:
        out["by_round"] = torch.from_numpy(np.stack([np.asarray(p, dtype=np.float64) for p in bal.by_round]))
    return {k: v.detach().cpu().contiguous() for k, v in out.items()}


def save_diagnosis(diag: Diagnosis, teacher: str, home: Path | str | None = None) -> Path:
    """Keep ``diag`` under the run store (replacing that method's earlier one); returns its folder."""
    from safetensors.torch import save

    folder = diagnoses_dir(teacher, diag.data.info.name, home) / diag.data.method
    blob = save(_tensors(diag))
    digest = hashlib.sha256(blob).hexdigest()
    name = f"tensors-{digest[:16]}.safetensors"
    d = diag.data
    meta = {
        "format": FORMAT, "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"), "teacher": teacher,
        "config": diag.config.to_dict(),
        "device": diag.device or (str(diag.reference.device) if diag.reference is not None else None),
        "data": {"method": d.method, "kind": d.kind, "teacher_arch": d.teacher_arch,
                 "student_steps": d.student_steps, "seconds": d.seconds, "info": asdict(d.info)},
        "fid": diag.fid.to_dict() if diag.fid else None,
        "fid_real": diag.fid_real.to_dict() if diag.fid_real else None,
        "dictionary": {"k_requested": diag.dictionary.k_requested,
                       "pca_components": diag.dictionary.pca_components},
        "k_curve": diag.k_curve.to_dict() if diag.k_curve else None,
        "tensors": {"file": name, "sha256": digest}}
    with _WRITE_LOCK:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / name, blob)
        atomic_write_json(folder / JSON_NAME, meta)
        for old in folder.glob("tensors-*.safetensors"):  # earlier diagnoses of this method
            if old.name != name:
                old.unlink(missing_ok=True)
    return folder


def _info(d: dict) -> DatasetInfo:
    return DatasetInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _build(meta: dict, t: dict[str, torch.Tensor]) -> Diagnosis:
    m = meta["data"]
    info = _info(m["info"])
    images, rounds, logits = t["images"], t["rounds"], t["teacher_logits"]
    n = len(images)
    if images.dim() != 4 or rounds.shape != (n,) or logits.shape != (n, info.num_classes):
        raise ValueError(f"tensor shapes disagree: images {tuple(images.shape)}, rounds "
                         f"{tuple(rounds.shape)}, logits {tuple(logits.shape)}")
    data = SubstitutionData(method=m["method"], kind=m["kind"], images=images, rounds=rounds,
                            teacher_logits=logits, info=info, teacher_arch=m["teacher_arch"],
                            student_steps=int(m["student_steps"]), seconds=float(m["seconds"]))
    sub, orig = t["substitution"].numpy(), t["original"].numpy()
    by_round = list(t["by_round"].numpy()) if "by_round" in t else []
    balance = ClassBalance(sub, orig, imbalance(sub), imbalance(orig), by_round)
    dictionary = ConfounderDictionary(t["prototypes"], t["proportions"], t["labels"],
                                      int(meta["dictionary"]["k_requested"]),
                                      int(meta["dictionary"]["pca_components"]))
    fid, real, curve = meta.get("fid"), meta.get("fid_real"), meta.get("k_curve")
    return Diagnosis(DistillConfig.from_dict(dict(meta["config"])), data, None,
                     FIDResult(**fid) if fid else None, balance, dictionary,
                     KCurve(**curve) if curve else None, FIDResult(**real) if real else None,
                     device=meta.get("device"))


def load_diagnosis(folder: Path | str) -> Diagnosis | None:
    """The diagnosis kept in ``folder``; None when there is none; a corrupt or foreign one is an
    InputError that names the folder and what is wrong."""
    from safetensors.torch import load

    folder = Path(folder)
    try:
        meta = read_json(folder / JSON_NAME)
    except (InputError, OSError) as exc:
        raise InputError(f"saved diagnosis {folder}: expected {JSON_NAME}, found an unreadable file "
                         f"({exc})") from None
    if meta is None:
        return None
    try:
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, this version reads {FORMAT}")
        name = str(meta["tensors"]["file"])
        if not _TENSORS.fullmatch(name):  # a file of this folder, never a path elsewhere
            raise ValueError(f"tensors file {name!r} is not a name this version writes")
        blob = (folder / name).read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta["tensors"]["sha256"]:
            raise ValueError(f"{name} does not match the sha256 recorded for it")
        return _build(meta, load(blob))
    except (OSError, KeyError, TypeError, ValueError, AttributeError, RuntimeError, InputError) as exc:
        raise InputError(f"saved diagnosis {folder}: expected a diagnosis written by this version, "
                         f"found a corrupt or incomplete one ({type(exc).__name__}: "
                         f"{str(exc)[:200]}); make it again to replace it") from None


def load_diagnoses(cfg: DistillConfig, teacher: str, home: Path | str | None = None
                   ) -> tuple[dict[str, Diagnosis], dict[str, str]]:
    """Every method's kept diagnosis for this teacher and dataset: ({method: Diagnosis},
    {method: why it could not be read}). One made with another architecture or data root for
    the same file is left out (it is not this setting's)."""
    folder = diagnoses_dir(teacher, cfg.dataset, home)
    found: dict[str, Diagnosis] = {}
    problems: dict[str, str] = {}
    for method in METHODS.names():
        try:
            diag = load_diagnosis(folder / method)
        except InputError as exc:
            problems[method] = str(exc)
            continue
        if diag is not None and all(getattr(diag.config, f) == getattr(cfg, f)
                                    for f in SAME_TEACHER_FIELDS):
            found[method] = diag
    return found, problems
