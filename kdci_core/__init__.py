"""KDCI Studio engine: data-free knowledge distillation with causal intervention (KDCI).

Importable without Streamlit. Packages, from the bottom layer up (docs/ARCHITECTURE.md):
``common``; ``data``, ``kdci``; ``models``; ``teachers``, ``methods``; ``distill`` (the loop);
``figures``; ``runs``, ``diagnostics``; ``reports``; ``cli``.
"""

__version__ = "0.2.0"
