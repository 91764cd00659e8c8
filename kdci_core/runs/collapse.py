"""A result that flags itself: a student that predicts one class for most test images.

Why: a collapsed student (every image called "Shirt") scores exactly one class's share of the
test split, 10% on a balanced ten-class set, and nothing else in a run's numbers says so; a
reader of a table of accuracies takes it for a weak run. The final student's prediction
histogram on the test split (``prediction_counts`` in ``result.json``, written by the
recorder) tells it at once: one class above :data:`COLLAPSE_SHARE` of the predictions.
"""

from __future__ import annotations

from typing import Mapping, Sequence

#: a student predicting one class for more than this share of the test images is collapsed
COLLAPSE_SHARE = 0.8


def prediction_counts(predictions, num_classes: int) -> list[int]:
    """How many test images the student assigned to each class (a histogram of its argmax)."""
    import numpy as np  # here: listing runs (this module's other use) must not pay for numpy

    return np.bincount(np.asarray(predictions, dtype=np.int64).ravel(), minlength=num_classes).tolist()


def prediction_summary(result: Mapping | None) -> dict | None:
    """The dominant predicted class of a result with ``prediction_counts``: ``class`` (index),
    ``name`` (its class name when the result has them), ``share`` (0..1), ``collapsed`` and the
    ``counts``; None for a result without the histogram (a run of an older release)."""
    counts = list((result or {}).get("prediction_counts") or [])
    total = sum(counts)
    if not total:
        return None
    top = max(range(len(counts)), key=counts.__getitem__)  # the first of the largest
    names: Sequence = (result or {}).get("class_names") or []
    share = counts[top] / total
    return {"class": top, "name": str(names[top]) if top < len(names) else str(top), "share": share,
            "collapsed": share > COLLAPSE_SHARE, "counts": counts, "total": total,
            "class_names": [str(n) for n in names] or [str(i) for i in range(len(counts))]}


def collapse_text(summary: Mapping | None) -> str:
    """"collapsed: predicts Shirt for 100% of the 2,000 test images" (empty when not collapsed)."""
    if not summary or not summary.get("collapsed"):
        return ""
    return (f"collapsed: predicts {summary['name']} for {100 * summary['share']:.0f}% of the "
            f"{summary['total']:,} test images")
