"""Confounder dictionary page (ACCEPTANCE 4.3): the dictionary KDCI builds from a method's
substitution data. Choose K and the PCA size; see the teacher's logits projected with PCA, t-SNE
or UMAP coloured by cluster with the prototypes marked, the proportions P(z), and the K curve
with a recommended K next to the paper's defaults.

Presentation only: clustering, projections and the K curve are ``kdci_core`` calls; the slow
ones (t-SNE, UMAP, the K curve) are cached and draw a progress bar only when they compute.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import streamlit as st

from app.launch_form import prefill_k
from app.shared import (ProgressBar, device, diagnoses_for, diagnosis_problem, keep_diagnosis,
                        progress_bar, show_error, teacher_caption, teacher_config)
from kdci_core.common.errors import InputError
from kdci_core.diagnostics.diagnose import diagnose, dictionary_for
from kdci_core.kdci.kcurve import default_k_grid, k_curve
from kdci_core.diagnostics.projections import METHODS as PROJECTION_METHODS
from kdci_core.diagnostics.projections import NAMES as PROJECTIONS
from kdci_core.diagnostics.projections import project
from kdci_core.figures.diagnostics import dictionary_figure, k_curve_figure, pz_figure
from kdci_core.methods import METHODS

PAGES = Path(__file__).resolve().parent
#: engine names -> this page's fields, for its error messages (making data: the Substitution page's)
FIELDS = {"--k": "'K (prototypes)'", "--pca-dim": "'PCA components'", "pca_dim": "'PCA components'",
          "--wild-data": "'Wild data' (Substitution data page)"}


@st.cache_data(show_spinner=False, max_entries=32)
def cached_projection(points, extra, method: str, seed: int):
    # only on a miss; one bar over the projection's stages (UMAP: loading, neighbours, graph,
    # layout epochs; a stage that reports nothing says its seconds), in percent
    with progress_bar(f"{PROJECTIONS[method]} of the teacher's logits…", counts=False) as bar:
        return project(points, method, extra=extra, seed=seed, progress=bar)


@st.cache_data(show_spinner=False, max_entries=16)
def cached_k_curve(features, ks: tuple, pca_dim, seed: int):
    with progress_bar("K curve…") as bar:
        return k_curve(features, list(ks), pca_dim=pca_dim, seed=seed, progress=bar)


def ensure_data(cfg, method: str):
    """The method's latest substitution data (made here with default options if there is none)."""
    done = diagnoses_for(cfg)
    if method not in done:
        st.info(f"No substitution data for {method} yet with this teacher. Make it here with the "
                f"default options, or on the Substitution data page for more control.")
        problem, slot = diagnosis_problem(cfg, method), st.empty()
        if not st.button(f"Make {method}'s substitution data", type="primary", key="dict_make"):
            if problem:
                slot.warning(problem, icon=":material/warning:")
            return None
        bar = ProgressBar(f"{method}: making substitution data…")
        try:
            keep_diagnosis(cfg, diagnose(replace(cfg, method=method, kdci=False), fid=None, progress=bar))
        except InputError as exc:
            show_error(exc, FIELDS)
            return None
        finally:
            bar.empty()
    return done[method]


def render() -> None:
    st.title("Confounder dictionary")
    st.write("KDCI clusters the teacher's logits on the substitution data (PCA + k-means++): the K "
             "prototypes are the confounder dictionary, their shares P(z) its prior. Pick K from "
             "the K curve rather than by trial.")
    cfg = teacher_config()
    st.caption(teacher_caption(cfg))
    device()
    names = METHODS.names()
    method = st.selectbox("Substitution data of", names, index=names.index("deepinv"), key="dict_method")
    diag = ensure_data(cfg, method)
    if diag is None:
        return
    logits, n = diag.data.teacher_logits, len(diag.data.teacher_logits)
    c1, c2, c3 = st.columns(3)
    k = int(c1.number_input("K (prototypes)", 1, n, min(METHODS.get(method).default_k, n), key="dict_k",
                            help=f"{method}'s default: {METHODS.get(method).default_k} (the paper's "
                                 f"section 4.3, see docs/KDCI_IMPLEMENTATION.md); at most the {n} "
                                 f"samples"))
    pca_auto = c2.checkbox("PCA: keep 95% of the variance", True, key="dict_pca_auto")
    pca_dim = None if pca_auto else int(c2.number_input("PCA components", 1, logits.shape[1],
                                                         min(8, logits.shape[1]), key="dict_pca"))
    view = c3.radio("Projection", PROJECTION_METHODS, format_func=PROJECTIONS.get, horizontal=True,
                    key="dict_view")
    try:
        d = dictionary_for(diag.data, k, pca_dim=pca_dim, seed=diag.config.seed)
    except InputError as exc:
        show_error(exc, FIELDS)
        return
    st.caption(f"{n} samples from {diag.data.num_rounds} round(s) of {method}; K' = {d.k} non-empty "
               f"clusters (asked {d.k_requested}); PCA {d.pca_components or 'skipped'} components.")
    points, protos = logits.numpy(), d.prototypes.cpu().numpy()
    try:
        proj = cached_projection(points, protos, view, int(diag.config.seed))
    except InputError as exc:
        show_error(exc, FIELDS)
        return
    left, right = st.columns([3, 2])
    left.plotly_chart(dictionary_figure(proj, d.labels.cpu().numpy(), d.proportions.cpu().numpy(),
                                        title=f"{PROJECTIONS[view]} of the teacher's logits "
                                              f"({n} samples, K'={d.k})"))
    right.plotly_chart(pz_figure(d.proportions.cpu().numpy()))
    st.subheader("K curve")
    try:
        grid = tuple(default_k_grid(n))
        curve = cached_k_curve(points, grid, pca_dim, int(diag.config.seed))
    except InputError as exc:
        show_error(exc, FIELDS)
        return
    st.plotly_chart(k_curve_figure(curve, {method: METHODS.get(method).default_k}))
    st.markdown(f"**Recommended K = {curve.recommended_k}** ({curve.rule}) — {method}'s default "
                f"in the paper: {METHODS.get(method).default_k}.")
    launch_buttons(method, k, curve.recommended_k)


def launch_buttons(method: str, chosen: int, recommended: int) -> None:
    """Carry the diagnosis to a run: open the Runs page's form with this method and K filled in."""
    c1, c2, _ = st.columns([1, 1, 2])
    picked = None
    if c1.button(f"Launch {method} with the recommended K = {recommended}", type="primary",
                 key="dict_launch_recommended"):
        picked = recommended
    if chosen != recommended and c2.button(f"Launch {method} with K = {chosen}", key="dict_launch_chosen"):
        picked = chosen
    if picked is not None:
        prefill_k(picked, method)
        st.switch_page(PAGES / "runs.py")


render()
