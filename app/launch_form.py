"""The Runs page's launch form: every setting ``kdci distill`` has, and a sweep builder (methods x
KDCI on/off x K values x seeds), checked with the engine's own validation before anything
starts, the error naming the page's field. It remembers its last values (in the run store), and
the Confounder dictionary page can open it with a K (``prefill_k``).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import streamlit as st

from app.arch_field import arch_select
from app.shared import error_text
from app.shared import page_message as shared_page_message
from app.shared import remember, remembered
from app.teacher_choice import capabilities, unserved, with_teacher_input
from kdci_core.common.allowed_paths import check_allowed
from kdci_core.common.device import resolve_device
from kdci_core.common.errors import InputError
from kdci_core.data.augment import AUGMENTATIONS
from kdci_core.data.wild import check_wild_source
from kdci_core.distill import ABLATION_CHOICES, FUSION_CHOICES, DistillConfig
from kdci_core.distill.corrections import CORRECTIONS
from kdci_core.distill.presets import LOOP, PRESETS
from kdci_core.kdci import ATTENTION_INPUTS
from kdci_core.methods import METHODS
from kdci_core.methods.needs import check_teacher_serves
from kdci_core.teachers.input_spec import spec_of

#: command-line flags -> the form's field names, so the engine's messages name what a user sees
LABELS = {"--k": "K values", "--lr": "Learning rate", "--weight-decay": "Weight decay",
          "--kdci-weight-decay": "KDCI weight decay", "--epochs": "Epochs",
          "--steps-per-epoch": "Steps per epoch", "--batch-size": "Batch size", "--tau": "KD temperature",
          "--attn-dim": "Attention size", "--pca-dim": "PCA components", "--student": "Student",
          "--teacher-arch": "the Teacher page's architecture", "--teacher": "the Teacher page's teacher",
          "--wild-data": "Wild data", "--dictionary-source-arch": "Dictionary source architecture",
          "--dictionary-source": "Dictionary source", "--ablation": "Ablation", "--device": "Device",
          "--attn-init-gain": "Attention init gain", "--correction": "Shift correction",
          "--preset": "Preset", "--augment": "Augmentation", "--fusion": "Fusion",
          "--kdci": "KDCI on/off", "--log-every": "Log every N steps", "--method": "Methods",
          "--image-size": "the Teacher page's 'Image size (px)'", "--in-channels": "the Teacher page's 'Channels'",
          "--mean": "the Teacher page's 'Mean'", "--std": "the Teacher page's 'Std'"}
#: the student field's default
STUDENT = "lenet5_half"
#: the form's fields kept between visits (their session keys)
KEPT = ("runs_methods", "runs_on", "runs_off", "runs_preset", "runs_seeds", "runs_epochs", "runs_steps",
        "runs_student", "runs_batch", "runs_lr", "runs_wd", "runs_tau", "runs_ks", "runs_ablation",
        "runs_fusion", "runs_attn_dim", "runs_attn_input", "runs_gain", "runs_kdci_wd", "runs_pca",
        "runs_correction", "runs_augment", "runs_wild", "runs_dict_src", "runs_dict_arch", "runs_log_every")


def _d(key: str, default):
    """A widget's default, or None when the session already holds its value (restored, or set by
    the preset or the dictionary page): Streamlit then takes it without a warning."""
    return None if key in st.session_state else default


#: the form's labels of the engine's flags ("--k" -> "'K values'")
FORM_FIELDS = {flag: f"'{label}'" for flag, label in LABELS.items()}


def page_message(message: str) -> str:
    """An engine message with its command-line flags (whole flags: ``--k`` is not the start of
    ``--kdci``) replaced by the form's field names."""
    return shared_page_message(message, FORM_FIELDS)


def form_error(exc: Exception) -> str:
    """An engine error in the form's words (:func:`app.shared.error_text`: the field at fault
    read from the error, not from its text)."""
    return error_text(exc, FORM_FIELDS)


def prefill_k(k: int, method: str | None = None) -> None:
    """Open the form with this K (and method): the Confounder dictionary page's 'Launch with this K'."""
    st.session_state["runs_ks"] = str(k)
    if method is not None:
        st.session_state["runs_methods"] = [method]
        st.session_state["runs_on"] = True
    st.session_state["runs_form_open"] = True


def restore() -> None:
    """The form's last values (this dashboard's, kept in the run store), once per session."""
    if st.session_state.get("_runs_form_restored"):
        return
    for key, value in (remembered("launch_form") or {}).items():
        if key in KEPT and key not in st.session_state:
            st.session_state[key] = value
    st.session_state["_runs_form_restored"] = True


def _preset_changed() -> None:
    loop = LOOP[st.session_state["runs_preset"]]
    st.session_state["runs_epochs"], st.session_state["runs_steps"] = loop["epochs"], loop["steps_per_epoch"]
    st.session_state["runs_batch"] = loop["batch_size"]


def parse_ks(text: str) -> list:
    """'' -> [None] (the method's K); '8, 32' -> [8, 32]; 'auto' -> ['auto']."""
    items = [t.strip() for t in str(text or "").split(",") if t.strip()]
    out = []
    for t in items:
        if t == "auto":
            out.append("auto")
        else:
            try:
                out.append(int(t))
            except ValueError:
                raise InputError(f"--k: expected integers or 'auto' separated by commas, found {t!r}") from None
    return out or [None]


def method_params_editor(method: str) -> dict:
    """A table of the method's hyperparameters (default, reference source, value); returns the
    values changed from their defaults, as text: the config's validation reads each by its
    declared type (``kdci_core.distill.params``), the parser of ``--param``."""
    cls = METHODS.get(method)
    rows = [{"parameter": k, "default": json.dumps(v), "value": json.dumps(v), "source": cls.sources.get(k, "")}
            for k, v in cls.defaults.items()]
    edited = st.data_editor(rows, key=f"runs_params_{method}", hide_index=True, disabled=["parameter", "default", "source"],
                            column_config={"value": st.column_config.TextColumn(
                                help="10, 0.5, true or maml: read as the default's type")})
    return {row["parameter"]: str(row["value"]) for row in edited
            if row["value"] not in (None, "", row["default"])}  # a cleared cell: the default


def configs(base: DistillConfig, methods, kdci_settings, ks, seeds, params: dict) -> list[DistillConfig]:
    """The sweep: one config per method x KDCI setting x K x seed (K and the ablation only where
    KDCI is on; a KDCI-off run at several K would be the same run)."""
    out = []
    for method, on in itertools.product(methods, kdci_settings):
        for k in (ks if on else [None]):
            for seed in seeds:
                out.append(replace(base, method=method, kdci=on, k=k, seed=seed,
                                   ablation=base.ablation if on else "none",
                                   method_params=dict(params.get(method, {}))))
    return out


def methods_field(container, cfg: DistillConfig) -> list[str]:
    """The methods multiselect: the ones the teacher cannot serve (an ONNX black box: all but
    DFND and plain KD; a network without BatchNorm: no DeepInv, Fast, CMI) are marked, their
    reasons listed, and a launch with one of them is refused with that reason."""
    names, refused = METHODS.names(), unserved(cfg)
    default = ["deepinv"] if "deepinv" not in refused else [m for m in names if m not in refused][:1]
    methods = container.multiselect(
        "Methods", names, default=_d("runs_methods", default), key="runs_methods",
        format_func=lambda m: f"{m} (not with this teacher)" if m in refused else m)
    if refused:
        container.caption("Not with this teacher: " + "; ".join(f"{m}: {why}" for m, why in refused.items()))
    return methods


def form(cfg: DistillConfig) -> list[DistillConfig] | None:
    """Draw the form; returns the validated configs when Launch was clicked (None otherwise)."""
    restore()
    cfg = with_teacher_input(cfg)
    c1, c2, c3 = st.columns([3, 1, 1])
    methods = methods_field(c1, cfg)
    on = c2.checkbox("KDCI on", _d("runs_on", True), key="runs_on")
    off = c3.checkbox("KDCI off", _d("runs_off", True), key="runs_off")
    preset = st.radio("Preset", list(PRESETS), horizontal=True, key="runs_preset", on_change=_preset_changed,
                      help="quick: CPU-sized defaults; paper: the reference scripts' CIFAR settings "
                           "(batch 256, 200 epochs x 400 steps, the methods' reference learning rates "
                           "and iterations; for a GPU). The fields below override it.")
    loop = LOOP[preset]
    c1, c2, c3, c4, c5 = st.columns(5)
    seeds = int(c1.number_input("Seeds", 1, 20, _d("runs_seeds", 3), key="runs_seeds", help="seeds 0 .. n-1"))
    epochs = int(c2.number_input("Epochs", 1, 10_000, _d("runs_epochs", loop["epochs"]), key="runs_epochs"))
    steps = int(c3.number_input("Steps per epoch", 1, 1_000_000, _d("runs_steps", loop["steps_per_epoch"]),
                                key="runs_steps"))
    batch = int(c4.number_input("Batch size", 2, 65_536, _d("runs_batch", loop["batch_size"]), key="runs_batch"))
    st.session_state.setdefault("runs_student", STUDENT)
    with c5:
        student = arch_select("Student", "runs_student", placeholder="choose or type a name")
    c1, c2, c3, c4 = st.columns(4)
    lr = c1.number_input("Learning rate", 0.0, 10.0, _d("runs_lr", None), format="%.4g", key="runs_lr",
                         placeholder="the preset's", help="empty or 0: the preset's (quick 0.01; paper "
                         "the method's reference)")
    wd = c2.text_input("Weight decay", _d("runs_wd", ""), key="runs_wd", placeholder="the method's reference")
    tau = c3.number_input("KD temperature", 0.0, 100.0, _d("runs_tau", None), key="runs_tau",
                          placeholder="the method's", help="empty or 0: the method's reference")
    ks_text = c4.text_input("K values", _d("runs_ks", ""), key="runs_ks", placeholder="the method's; e.g. 8, 32 or auto",
                            help="a comma-separated list sweeps K (KDCI-on runs); auto: the K curve's "
                                 "recommendation on the run's own data")
    with st.expander("KDCI, data and shift-correction settings", expanded=False):
        c1, c2, c3, c4 = st.columns(4)
        ablation = c1.selectbox("Ablation", list(ABLATION_CHOICES), key="runs_ablation")
        fusion = c2.selectbox("Fusion", list(FUSION_CHOICES), key="runs_fusion")
        attn_dim = int(c3.number_input("Attention size", 1, 4096, _d("runs_attn_dim", 256), key="runs_attn_dim"))
        attn_input = c4.selectbox("Attention input", list(ATTENTION_INPUTS), key="runs_attn_input")
        c1, c2, c3, c4 = st.columns(4)
        gain = c1.number_input("Attention init gain", 0.0, 1000.0, _d("runs_gain", 1.0), key="runs_gain")
        kdci_wd = c2.text_input("KDCI weight decay", _d("runs_kdci_wd", ""), key="runs_kdci_wd",
                                placeholder="the student's")
        pca = int(c3.number_input("PCA components", 0, 4096, _d("runs_pca", 0), key="runs_pca",
                                  help="0: keep 95% of the variance"))
        correction = c4.selectbox("Shift correction", list(CORRECTIONS), key="runs_correction",
                                  help="with KDCI on or off: balanced resamples class-balanced by the "
                                       "teacher's pseudo-labels; reweight weights by 1 / class share")
        c1, c2, c3, c4 = st.columns(4)
        augment = c1.selectbox("Augmentation", ["dataset's", *AUGMENTATIONS], key="runs_augment")
        wild = c2.text_input("Wild data", _d("runs_wild", ""), key="runs_wild",
                             placeholder="default photos; a folder or dataset:NAME",
                             help="a folder only under those the operator allows (an error lists them)")
        dict_src = c3.text_input("Dictionary source", _d("runs_dict_src", ""), key="runs_dict_src",
                                 placeholder="the teacher",
                                 help="a checkpoint file under the folders the operator allows")
        dict_arch = c4.text_input("Dictionary source architecture", _d("runs_dict_arch", ""), key="runs_dict_arch")
        c1, _, _, _ = st.columns(4)
        log_every = int(c1.number_input("Log every N steps", 0, 1_000_000, _d("runs_log_every", 10),
                                        key="runs_log_every",
                                        help="the loss curves' resolution (0: per epoch only); accuracy "
                                             "is measured once per epoch either way"))
    params = {}
    if methods:
        with st.expander("Method hyperparameters (defaults and their sources; edit the value column)"):
            for tab, method in zip(st.tabs(methods), methods):
                with tab:
                    params[method] = method_params_editor(method)
    settings = [s for s, keep in ((True, on), (False, off)) if keep]
    ks = [None]
    try:
        ks = parse_ks(ks_text)
        wild_data = check_wild_source(wild)
        dict_src = str(check_allowed(dict_src, "--dictionary-source")) if dict_src.strip() else ""
        base = replace(cfg, student=student, preset=preset, epochs=epochs, steps_per_epoch=steps,
                       batch_size=batch, lr=lr or None, weight_decay=float(wd) if wd.strip() else None,
                       tau=tau or None, ablation=ablation, fusion=fusion, attn_dim=attn_dim,
                       attn_input=attn_input, attn_init_gain=gain,
                       kdci_weight_decay=float(kdci_wd) if kdci_wd.strip() else None,
                       pca_dim=pca or None, correction=correction,
                       augment=None if augment == "dataset's" else augment, wild_data=wild_data,
                       dictionary_source=dict_src.strip() or None,
                       dictionary_source_arch=dict_arch.strip() or None, log_every=log_every)
        if not student:
            raise InputError("--student: expected an architecture, found none chosen")
        caps = capabilities(cfg)
        for method in methods if caps is not None else ():
            check_teacher_serves(method, caps)
        cfgs = [c.resolve() for c in configs(base, methods, settings, ks, range(seeds), params)]
        st.caption(f"Input of every run: {spec_of(base).describe()}.")
        resolve_device(cfg.device)  # the worker's device check, now: no 'launched, then failed'
    except (InputError, ValueError) as exc:
        st.error(form_error(exc))
        cfgs = []
    n = len(cfgs)
    n_ks = f"{len(ks)} K value(s)" if ks != [None] else "the method's K"
    st.caption(f"{len(methods)} method(s) x {len(settings)} KDCI setting(s) x {n_ks} x "
               f"{seeds} seed(s) = {n} run{'s' * (n != 1)}")
    if st.button(f"Launch {n} run{'s' * (n != 1)}", type="primary", disabled=n == 0, key="runs_launch"):
        remember("launch_form", {k: st.session_state[k] for k in KEPT if k in st.session_state})
        return cfgs
    return None
