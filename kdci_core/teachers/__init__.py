"""Teachers: safe, validated loading of a checkpoint; the built-in digits teacher; training one;
and the :class:`TeacherReport` that the Teacher page and ``teacher inspect`` show.

- ``load``: ``load_teacher`` (safetensors, weights-only state dicts; never plain unpickling, never
  code: TorchScript is refused) with exact mismatch messages, non-finite weights refused by name;
- ``builtin``: the embedded default, trained on first use and cached in ``$KDCI_HOME``;
- ``train``: supervised training (``teacher train``);
- ``inspect``: ``TeacherReport`` (validation, parameters, test and per-class accuracy);
- ``uploads``: storing a dashboard upload.
"""

from .builtin import (BUILTIN_ARCH, BUILTIN_DATASET, BUILTIN_EPOCHS, BUILTIN_SEED, builtin_teacher,
                      builtin_teacher_path, load_named_teacher)
from .inspect import TeacherReport, builtin_report, inspect_checkpoint, report_for
from .load import (TeacherBundle, build_validated, check_finite, checkpoint_classes, freeze,
                   load_teacher, metadata_accuracy)
from .train import train_classifier, train_teacher
from .uploads import (UPLOAD_TYPES, check_upload_size, file_digest, remember_upload, sanitise_name,
                      save_upload, upload_record)

__all__ = ["BUILTIN_ARCH", "BUILTIN_DATASET", "BUILTIN_EPOCHS", "BUILTIN_SEED", "TeacherBundle",
           "TeacherReport", "UPLOAD_TYPES", "build_validated", "builtin_report", "builtin_teacher",
           "check_finite", "builtin_teacher_path", "check_upload_size", "checkpoint_classes", "file_digest", "freeze",
           "inspect_checkpoint", "load_named_teacher", "load_teacher", "metadata_accuracy",
           "remember_upload", "report_for", "sanitise_name", "save_upload", "upload_record", "train_classifier", "train_teacher"]
