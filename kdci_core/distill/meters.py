"""Running means of the loss terms, kept on the device between the points where they are read.

The loop adds each step's terms as device tensors and reads them once per window (a ``log_every``
record, an epoch record): one host sync per read instead of one per step, which is what keeps a
CUDA loop from waiting on the GPU after every step. A non-finite loss is caught at the read.
"""

from __future__ import annotations

import torch


class LossMeans:
    """Sums of each loss term since the last :meth:`pop`."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, metrics: dict) -> None:
        for name, value in metrics.items():
            value = value.float() if torch.is_tensor(value) else torch.tensor(float(value))
            self.sums[name] = self.sums[name] + value if name in self.sums else value.clone()
        self.count += 1

    def pop(self, step: int) -> dict[str, float]:
        """The means over the steps since the last pop, as floats (one host sync); resets.

        Raises FloatingPointError when the loss was not finite at any of those steps."""
        if not self.count:
            return {}
        names = list(self.sums)
        values = torch.stack([self.sums[n].reshape(()).float() for n in names]).tolist()
        count, first = self.count, step - self.count + 1
        self.sums, self.count = {}, 0
        means = {n: v / count for n, v in zip(names, values)}
        if "loss" in means and not torch.isfinite(torch.tensor(means["loss"])):
            raise FloatingPointError(f"loss became {means['loss']} within steps {first}-{step}: "
                                     "lower the learning rate (--lr)")
        return means
