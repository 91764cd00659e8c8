"""Reports on finished runs: the comparison (KDCI on vs off, paired by seed, with a paired
t-test), the views of two students on the test split, table rows, and the export to HTML, JSON
and Markdown. Figures come from :mod:`kdci_core.figures`; runs from :mod:`kdci_core.runs`.
"""

from .compare import (Comparison, Group, MethodGain, Pair, RunSummary, compare_runs, differing_fields,
                      load_finished, pairing_key)
from .export import FORMATS, export_report
from .students import (Corrections, StudentComparison, StudentView, corrected_examples,
                       load_run_student, penultimate_features, per_class_delta, run_test_split,
                       student_comparison, student_view, students_section, subset_indices)
from .tables import (accuracy_columns, accuracy_table, config_tables, gain_table, pairs_table, predictions_table,
                     sweep_fields, telemetry_table)

__all__ = ["accuracy_columns", "differing_fields", "pairing_key", "Comparison", "Corrections", "FORMATS", "Group", "MethodGain", "Pair", "RunSummary",
           "StudentComparison", "StudentView", "accuracy_table", "compare_runs", "corrected_examples",
           "export_report", "gain_table", "load_finished", "load_run_student", "pairs_table",
           "per_class_delta", "penultimate_features", "run_test_split", "student_comparison",
           "student_view", "students_section", "subset_indices", "telemetry_table", "config_tables",
           "predictions_table", "sweep_fields"]
