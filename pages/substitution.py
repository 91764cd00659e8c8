"""Substitution data page (ACCEPTANCE 4.2): make a method's substitution data and see its shift:
image grid, FID against the test split (labelled with its feature extractor), class proportions
under teacher pseudo-labels next to the test split's, imbalance figures, drift per round.

Presentation only: ``kdci_core.diagnostics`` makes and measures (and keeps each diagnosis in the
run store, so a server restart finds it); the figures are its builders.
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from app.shared import (ProgressBar, device, diagnoses_for, diagnosis_problem, keep_diagnosis, show_error,
                        teacher_caption, teacher_config)
from kdci_core.common.allowed_paths import check_allowed
from kdci_core.common.errors import InputError
from kdci_core.data.wild import check_wild_source
from kdci_core.diagnostics.diagnose import Diagnosis, diagnose
from kdci_core.diagnostics.substitution import DEFAULT_ROUNDS
from kdci_core.figures.diagnostics import fid_figure, proportions_figure, rounds_figure
from kdci_core.figures.images import class_grid
from kdci_core.methods import METHODS

FID_CHOICES = {"auto": "Auto (Inception if its weights are present, else the teacher)",
               "teacher": "Teacher penultimate features", "inception": "InceptionV3 (pytorch-fid)",
               "none": "Skip FID"}
#: engine names (flags, parameters) -> this page's fields, for its error messages
FIELDS = {"--wild-data": "'Wild data'", "--seed": "'Seed'", "--rounds": "'Synthesis rounds'",
          "--fid": "'FID feature extractor'", "--inception-weights": "'Inception weights file'",
          "inception_weights": "'Inception weights file'", "--k": "K"}
ALLOWED_HELP = "a path only under the folders the operator allows (an error lists them)"
GRID_PER_CLASS = 8


def controls():
    names = METHODS.names()
    c1, c2, c3 = st.columns([2, 1, 1])
    method = c1.selectbox("Method", names, index=names.index("deepinv"), key="sub_method",
                          format_func=lambda m: f"{m} ({METHODS.get(m).kind})")
    kind = METHODS.get(method).kind
    rounds = c2.number_input("Synthesis rounds", 1, 200, DEFAULT_ROUNDS, key="sub_rounds",
                             disabled=kind != "generation",
                             help="generation methods: rounds of synthesis collected (the student "
                                  "trains between rounds, as in a run); sampling methods select once")
    seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key="sub_seed")
    with st.expander("FID and data options"):
        fid = st.selectbox("FID feature extractor", list(FID_CHOICES), format_func=FID_CHOICES.get,
                           key="sub_fid")
        weights = st.text_input("Inception weights file (optional)", key="sub_weights",
                                placeholder="pt_inception-2015-12-05-6726825d.pth; default: torch hub cache",
                                help=ALLOWED_HELP)
        wild = st.text_input("Wild data (DFND / MosaicKD, optional)", key="sub_wild",
                             placeholder="a folder of images, or dataset:NAME; default: photo crops",
                             help=ALLOWED_HELP)
    return method, kind, int(rounds), int(seed), fid, weights.strip() or None, wild.strip() or None


def make(method, rounds, seed, fid, weights, wild) -> Diagnosis | None:
    try:
        weights = str(check_allowed(weights, "--inception-weights")) if weights else None
        wild = check_wild_source(wild)
    except InputError as exc:
        show_error(exc, FIELDS)
        return None
    cfg = replace(teacher_config(), method=method, seed=seed, kdci=False, wild_data=wild)
    bar = ProgressBar(f"{method}: making substitution data…")
    try:
        diag = diagnose(cfg, rounds=rounds, fid=None if fid == "none" else fid,
                        inception_weights=weights, progress=bar)
    except InputError as exc:
        show_error(exc, FIELDS)
        return None
    finally:
        bar.empty()
    keep_diagnosis(cfg, diag)
    return diag


def show(diag: Diagnosis) -> None:
    data, bal, info = diag.data, diag.balance, diag.data.info
    sub_imb = bal.substitution_imbalance
    m = st.columns(5)
    m[0].metric("Images", f"{len(data.images):,}", border=True,
                help=f"{data.num_rounds} round(s), {data.student_steps} student steps, {data.seconds:.1f} s")
    if diag.fid is not None:
        m[1].metric("FID vs test split", f"{diag.fid.value:.1f}", border=True, help=diag.fid.label())
    m[2].metric("Normalised entropy", f"{sub_imb.normalised_entropy:.3f}", border=True,
                delta=f"{sub_imb.normalised_entropy - bal.original_imbalance.normalised_entropy:+.3f} "
                      f"vs test", help="H(p) / log C: 1 = perfectly balanced classes")
    m[3].metric("KL to uniform", f"{sub_imb.kl_to_uniform:.3f} nats", border=True)
    ratio = "∞" if sub_imb.max_min_ratio == float("inf") else f"{sub_imb.max_min_ratio:.1f}"
    m[4].metric("Max / min class share", ratio, border=True,
                help=f"{sub_imb.empty_classes} class(es) never predicted; largest: "
                     f"{info.class_names[sub_imb.dominant_class]} ({100 * sub_imb.dominant_share:.1f}%)")
    if diag.fid is not None:
        floor = (f" Real training images ({diag.fid_real.n_substitution}) score "
                 f"**{diag.fid_real.value:.1f}** with the same extractor: the floor for this sample "
                 f"count." if diag.fid_real is not None else "")
        st.caption(f"FID extractor: **{diag.fid.extractor_name}**; {diag.fid.n_substitution} "
                   f"substitution vs {diag.fid.n_reference} test images.{floor}")
        if diag.fid.warning:
            st.warning(diag.fid.warning)
    # a stratified sample: one row per pseudo-label, each with its share of all the images (the
    # first 128 images were mostly one class whatever the bars below said)
    st.plotly_chart(class_grid(data.images, data.pseudo_labels, info, per_class=GRID_PER_CLASS,
                               title=f"{data.method}: {len(data.images):,} images, up to {GRID_PER_CLASS} "
                                     "per teacher pseudo-label (row: its share of all the images)"),
                    width="content", key="sub_grid")
    left, right = st.columns(2)
    left.plotly_chart(proportions_figure(bal.substitution, bal.original, info.class_names,
                                         substitution_imbalance=bal.substitution_imbalance,
                                         original_imbalance=bal.original_imbalance))
    if bal.by_round:
        right.plotly_chart(rounds_figure(bal.by_round, info.class_names))
    else:
        right.info(f"{data.method} selects its data once: there are no rounds to compare.")


def render() -> None:
    st.title("Substitution data")
    st.write("What a DFKD method trains the student on instead of the original data, and how far "
             "it is shifted from it: image quality (FID) and class skew under the teacher's labels.")
    cfg = teacher_config()
    st.caption(teacher_caption(cfg))
    device()  # surface a bad device choice before any work
    method, kind, rounds, seed, fid, weights, wild = controls()
    label = "Generate" if kind == "generation" else "Sample"
    done = diagnoses_for(cfg)
    if st.button(f"{label} substitution data", type="primary", key="sub_go"):
        make(method, rounds, seed, fid, weights, wild)
    if method in done:
        show(done[method])
    else:
        st.info(f"Press **{label} substitution data** to make {method}'s data with this teacher.")
        if problem := diagnosis_problem(cfg, method):
            st.warning(problem, icon=":material/warning:")
    fids = {m: d.fid for m, d in done.items() if d.fid is not None}
    if len(fids) > 1:
        st.subheader("All methods diagnosed so far")
        st.plotly_chart(fid_figure(fids))


render()
