"""KDCI Studio engine: data-free knowledge distillation with causal intervention (KDCI).

Importable without Streamlit. Sub-modules: ``models``, ``data``, ``teachers``, ``kdci``,
``methods``, ``distill``, ``runstore``, ``cli``.
"""

__version__ = "0.1.0"
