"""Shift diagnostics: what a DFKD method's substitution data look like next to the original.

- ``substitution``: make a method's data with the real loop (rounds tagged) or its selection;
- ``fid``: Frechet distance on pytorch-fid's InceptionV3 (weights present) or the teacher's
  penultimate features, both through pytorch-fid's ``calculate_frechet_distance``;
- ``proportions``: class shares under teacher pseudo-labels and imbalance figures;
- ``kcurve``: inertia/silhouette over K with a recommended K (the kneedle elbow);
- ``projections``: PCA / t-SNE / UMAP to 2-D, cached by their inputs;
- ``students``: finished students' features, per-class scores and corrected instances;
- ``diagnose``: all of it for one method (the ``diagnose`` command and the pages);
- ``figures`` / ``student_figures``: the plotly builders the pages and reports share.
"""
