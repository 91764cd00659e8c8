"""Stage 2 of KDCI: the backdoor adjustment, approximated with NWGM, as an ``nn.Module``.

    lambda   = softmax_i( w^T tanh(W_h s + W_z z_i) )        (additive attention, no biases)
    E_z      = sum_i lambda_i * P(z_i) * z_i                   (per sample, B x C)
    s_hat    = s + E_z            (fusion "add")
             = A s + B E_z        (fusion "linear", A = B = I at init)

The prototypes z and their proportions P(z) are constants (detached here); everything else is
trained by the student's optimiser.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kdci_core.common.errors import InputError, as_int, check_range

from .additive_score import additive_scores

FUSIONS = ("add", "linear")
LAMBDA_MODES = ("attention", "random")
#: what the attention reads (options; the paper's is ``raw``): the logits themselves, the logits
#: divided by the KD temperature ``tau``, or each logit vector layer-normalised
ATTENTION_INPUTS = ("raw", "tau", "layernorm")


class CausalIntervention(nn.Module):
    """Compensate student logits ``s`` with the attention-weighted confounder expectation."""

    def __init__(self, num_classes: int, attn_dim: int = 256, fusion: str = "add", *,
                 prototype_dim: int | None = None, lambda_mode: str = "attention",
                 attn_input: str = "raw", tau: float = 1.0, init_gain: float = 1.0):
        super().__init__()
        if attn_input not in ATTENTION_INPUTS:
            raise InputError(f"attn_input: expected one of {', '.join(ATTENTION_INPUTS)}, found {attn_input!r}")
        check_range("attn_init_gain", init_gain, low=0.0, high=1e3)
        self.attn_input, self.tau = attn_input, float(check_range("tau", tau, low=1e-6))
        c = check_range("num_classes", as_int("num_classes", num_classes), low=1, integer=True)
        d_m = check_range("attn_dim", as_int("attn_dim", attn_dim), low=1, high=4096,
                          integer=True)
        if fusion not in FUSIONS:
            raise InputError(f"fusion: expected one of {', '.join(FUSIONS)}, found {fusion!r}")
        if lambda_mode not in LAMBDA_MODES:
            raise InputError(f"lambda_mode: expected one of {', '.join(LAMBDA_MODES)}, "
                             f"found {lambda_mode!r}")
        self.num_classes, self.attn_dim = c, d_m
        self.fusion, self.lambda_mode = fusion, lambda_mode
        self.W_h = nn.Linear(c, d_m, bias=False)
        self.W_z = nn.Linear(c, d_m, bias=False)
        self.w = nn.Linear(d_m, 1, bias=False)
        self.prototype_dim = None
        self.mapping = None
        if prototype_dim is not None:
            # A dictionary from another model: map its feature dimension to C (trained).
            p = check_range("prototype_dim", as_int("prototype_dim", prototype_dim), low=1,
                            integer=True)
            self.prototype_dim = p
            self.mapping = nn.Linear(p, c, bias=False)
            if p == c:
                with torch.no_grad():
                    self.mapping.weight.copy_(torch.eye(c))
        if fusion == "linear":
            self.A = nn.Parameter(torch.eye(c))
            self.B = nn.Parameter(torch.eye(c))
        if init_gain != 1.0:  # scale PyTorch's default initialisation of the attention
            with torch.no_grad():
                for layer in (self.W_h, self.W_z, self.w):
                    layer.weight.mul_(init_gain)

    # ------------------------------------------------------------------ checks
    def _dtype(self) -> torch.dtype:
        return self.W_h.weight.dtype

    def _check_logits(self, s: Tensor) -> Tensor:
        if not isinstance(s, Tensor) or s.dim() != 2 or s.shape[1] != self.num_classes:
            shape = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            raise InputError(f"student_logits: expected shape (B, {self.num_classes}), "
                             f"found {shape}")
        return s.to(self._dtype())

    def _check_prototypes(self, prototypes: Tensor) -> Tensor:
        dim = self.prototype_dim or self.num_classes
        if (not isinstance(prototypes, Tensor) or prototypes.dim() != 2
                or prototypes.shape[0] < 1 or prototypes.shape[1] != dim):
            shape = tuple(prototypes.shape) if isinstance(prototypes, Tensor) else prototypes
            raise InputError(f"prototypes: expected shape (K, {dim}) with K >= 1, found {shape}")
        return prototypes.detach().to(self._dtype())

    def _check_proportions(self, proportions: Tensor, prototypes: Tensor) -> Tensor:
        k = prototypes.shape[0]
        if not isinstance(proportions, Tensor) or tuple(proportions.shape) != (k,):
            shape = tuple(proportions.shape) if isinstance(proportions, Tensor) else proportions
            raise InputError(f"proportions: expected shape ({k},) to match prototypes "
                             f"{tuple(prototypes.shape)}, found {shape}")
        return proportions.detach().to(self._dtype())

    # ------------------------------------------------------------------ math
    def mapped_prototypes(self, prototypes: Tensor) -> Tensor:
        """Prototypes in the student's logit space (``K x C``): mapped when from another model."""
        z = self._check_prototypes(prototypes)
        return self.mapping(z) if self.mapping is not None else z

    def _weights(self, s: Tensor, z: Tensor) -> Tensor:
        if self.lambda_mode == "random":
            # Ablation: no learned attention, fresh noise from the global RNG each call.
            noise = torch.randn(s.shape[0], z.shape[0], device=s.device, dtype=s.dtype)
            return torch.softmax(noise, dim=1)
        s, z = self.attention_input(s), self.attention_input(z)
        h = self.W_h(s)                                   # B x d_m
        g = self.W_z(z)                                   # K x d_m
        e = additive_scores(h, g, self.w.weight[0])        # B x K, w . tanh(h + g), no B x K x d_m kept
        return torch.softmax(e.float(), dim=1).to(s.dtype)

    def attention_input(self, logits: Tensor) -> Tensor:
        """What the attention reads of a logit vector (``attn_input``)."""
        if self.attn_input == "tau":
            return logits / self.tau
        if self.attn_input == "layernorm":
            return nn.functional.layer_norm(logits, logits.shape[-1:])
        return logits

    def attention_weights(self, student_logits: Tensor, prototypes: Tensor) -> Tensor:
        """lambda, ``B x K``: non-negative, each row sums to 1."""
        s = self._check_logits(student_logits)
        return self._weights(s, self.mapped_prototypes(prototypes))

    def compensation(self, student_logits: Tensor, prototypes: Tensor,
                     proportions: Tensor) -> Tensor:
        """E_z = sum_i lambda_i P(z_i) z_i, ``B x C``."""
        s = self._check_logits(student_logits)
        p = self._check_proportions(proportions, prototypes)
        z = self.mapped_prototypes(prototypes)
        lam = self._weights(s, z)
        return (lam * p[None, :]) @ z

    def fuse(self, student_logits: Tensor, compensation: Tensor) -> Tensor:
        """f(s, E_z): ``s + E_z`` or ``A s + B E_z``."""
        s = self._check_logits(student_logits)
        if tuple(compensation.shape) != tuple(s.shape):
            raise InputError(f"compensation: expected shape {tuple(s.shape)} (the student "
                             f"logits'), found {tuple(compensation.shape)}")
        if self.fusion == "add":
            return s + compensation
        return s @ self.A.t() + compensation @ self.B.t()

    def forward(self, student_logits: Tensor, prototypes: Tensor, proportions: Tensor) -> Tensor:
        """Compensated logits s_hat, same shape as ``student_logits``."""
        return self.fuse(student_logits,
                         self.compensation(student_logits, prototypes, proportions))

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, attn_dim={self.attn_dim}, "
                f"fusion={self.fusion!r}, prototype_dim={self.prototype_dim}, "
                f"lambda_mode={self.lambda_mode!r}, attn_input={self.attn_input!r}")
