"""How strong each method's adversarial synthesis term is: the gradient norm it sends to the
images, in the references' forms (DeepInversion's clamped JS at T=3, Fast's and CMI's
agreement-masked KL at T=1, MosaicKD's KL at T=1) against the form this project used before
(an unclamped JS at the method's KD temperature: T=20 for DeepInv and Fast, 4 for MosaicKD),
on a confident teacher (the built-in digits teacher) and a partly trained student.

    python benchmarks/adversarial_gradients.py
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from common import OUT, machine, write_json


def old_js(s: torch.Tensor, t: torch.Tensor, tau: float) -> torch.Tensor:
    """The earlier shared term: JS between the softmaxes at the KD temperature, no clamping."""
    p, q = F.softmax(s / tau, dim=1), F.softmax(t / tau, dim=1)
    m = (0.5 * (p + q)).clamp_min(1e-8).log()
    return 0.5 * (F.kl_div(m, p, reduction="batchmean") + F.kl_div(m, q, reduction="batchmean"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="images")
    ap.add_argument("--student-steps", type=int, default=200, help="KD steps to train the student first")
    args = ap.parse_args()
    from kdci_core.data import load_dataset
    from kdci_core.methods.synthesis import ADVERSARIAL
    from kdci_core.models import build_model
    from kdci_core.teachers import builtin_teacher

    torch.manual_seed(0)
    teacher = builtin_teacher().model
    data = load_dataset("digits")
    student = build_model("lenet5_half", num_classes=10, in_channels=1)
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
    x_train = data.train.images
    for _ in range(args.student_steps):  # a student part way through distillation
        x = x_train[torch.randint(0, len(x_train), (128,))]
        with torch.no_grad():
            t = teacher(x)
        loss = F.kl_div(F.log_softmax(student(x) / 4, 1), F.softmax(t / 4, 1), reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.eval()
    x = data.test.images[:args.n].clone().requires_grad_(True)
    forms = {"deepinv: old -JS at T=20": lambda s, t: old_js(s, t, 20.0),
             "deepinv: clamped JS at T=3": ADVERSARIAL["clamped-js"],
             "fast/cmi: old -JS at T=20": lambda s, t: old_js(s, t, 20.0),
             "fast/cmi: masked KL at T=1": ADVERSARIAL["masked-kl"],
             "mosaickd: old -JS at T=4": lambda s, t: old_js(s, t, 4.0),
             "mosaickd: KL at T=1": ADVERSARIAL["kl"]}
    with torch.no_grad():
        t_conf = F.softmax(teacher(x), 1).max(1).values.mean().item()
    rows = []
    for name, form in forms.items():
        x.grad = None
        form(student(x), teacher(x)).backward()
        rows.append({"form": name, "grad_norm": x.grad.norm().item()})
    print(f"teacher mean max-softmax on these images: {t_conf:.3f}; student after {args.student_steps} KD steps")
    print(f"{'term':<30} {'|d term / d x|':>16}")
    for r in rows:
        print(f"{r['form']:<30} {r['grad_norm']:16.3e}")
    ratios = {"deepinv": rows[1]["grad_norm"] / rows[0]["grad_norm"],
              "fast/cmi": rows[3]["grad_norm"] / rows[2]["grad_norm"],
              "mosaickd": rows[5]["grad_norm"] / rows[4]["grad_norm"]}
    for k, v in ratios.items():
        print(f"{k}: the reference's term sends {v:.1f}x the gradient of the old one")
    write_json(OUT / "adversarial_gradients.json", {"machine": machine(), "teacher_confidence": t_conf,
                                                     "rows": rows, "ratios": ratios, "time": time.time()})


if __name__ == "__main__":
    main()
