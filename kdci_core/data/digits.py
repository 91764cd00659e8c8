"""``digits``: scikit-learn's bundled 8x8 handwritten digits, the embedded default dataset.

Ships inside scikit-learn, so it needs no download and loads in milliseconds; that is what
makes the built-in teacher and the smoke tests possible on any machine.
"""

from __future__ import annotations

import numpy as np
import torch

from .common import DATASETS, finish
from .types import LabeledDataset


@DATASETS.register("digits")
def load(root=None, *, image_size=None, in_channels=None, mean=None, std=None) -> LabeledDataset:
    """1797 grey 8x8 images (0..16 scaled to [0, 1]); 80/20 stratified split, random_state=0.

    ``root`` is ignored (the data is bundled). Mean/std are computed on the train split.
    """
    from sklearn.datasets import (
        load_digits,  # lazy: scikit-learn takes a second to import
    )
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.from_numpy((bunch.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = bunch.target.astype(np.int64)
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0,
                                           stratify=y)
    return finish("digits", train=x[idx_train], train_labels=y[idx_train],
                  test=x[idx_test], test_labels=y[idx_test],
                  class_names=[str(int(c)) for c in bunch.target_names],
                  source="scikit-learn load_digits (bundled)",
                  image_size=image_size, in_channels=in_channels, norm_mean=mean, norm_std=std)
