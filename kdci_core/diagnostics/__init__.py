"""Shift diagnostics: what a DFKD method's substitution data look like next to the original.

- ``substitution``: make a method's data with the real loop (rounds tagged) or its selection;
- ``fid``: Frechet distance on pytorch-fid's InceptionV3 (weights present) or the teacher's
  penultimate features, both through pytorch-fid's ``calculate_frechet_distance``;
- ``proportions``: class shares under teacher pseudo-labels and imbalance figures;
- the K curve (inertia/silhouette over K, a recommended K) lives with KDCI (``kdci.kcurve``),
  since a run can choose its own K from it (``--k auto``); re-exported here;
- ``projections``: PCA / t-SNE / UMAP to 2-D, cached by their inputs;
- ``diagnose``: all of it for one method (the ``diagnose`` command and the pages);
- ``saved``: diagnoses kept in the run store (they outlive the dashboard's process);
- ``stages``: one progress bar over a long action's stages.
Figures of these results are drawn by :mod:`kdci_core.figures.diagnostics`; finished students
are compared in :mod:`kdci_core.reports`.
"""

from .diagnose import ClassBalance, Diagnosis, diagnose, dictionary_for, reference_subset
from .fid import FIDResult, compute_fid, frechet_distance
from ..kdci.kcurve import KCurve, default_k_grid, k_curve, recommend_k
from .projections import Projection, project
from .proportions import Imbalance, class_proportions, imbalance, proportions_by_round
from .saved import load_diagnoses, load_diagnosis, save_diagnosis, teacher_id
from .stages import Stages
from .substitution import (DEFAULT_ROUNDS, Reference, SubstitutionCollector, SubstitutionData,
                           collect_substitution_data)

__all__ = ["ClassBalance", "DEFAULT_ROUNDS", "Diagnosis", "FIDResult", "Imbalance", "KCurve",
           "Projection", "Reference", "Stages", "SubstitutionCollector", "SubstitutionData", "class_proportions",
           "collect_substitution_data", "compute_fid", "default_k_grid", "diagnose", "dictionary_for",
           "frechet_distance", "imbalance", "k_curve", "load_diagnoses", "load_diagnosis", "project",
           "proportions_by_round", "recommend_k", "reference_subset", "save_diagnosis", "teacher_id"]
