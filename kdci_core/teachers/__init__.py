"""Teachers: safe, validated loading of a checkpoint; the built-in digits teacher; training one;
and the :class:`TeacherReport` that the Teacher page and ``teacher inspect`` show.

- ``load``: ``load_teacher`` (safetensors, weights-only state dicts; never plain unpickling, never
  code: TorchScript is refused) with exact mismatch messages, non-finite weights refused by name;
- ``builtin``: the embedded default, trained on first use and cached in ``$KDCI_HOME``;
- ``train``: supervised training (``teacher train``);
- ``inspect``: ``TeacherReport`` (validation, parameters, test and per-class accuracy);
- ``uploads``: storing a dashboard upload;
- ``onnx_graph``/``onnx_teacher``: a black-box ONNX teacher, judged from its graph, run by
  onnxruntime (``load_onnx_teacher``);
- ``capabilities``: what a teacher can serve a method (logits, features, BatchNorm, gradients);
- ``suggest``: the torchvision/timm/zoo names whose layers match a state dict;
- ``input_spec``: the input a teacher expects (size, channels, normalisation), value by value.
"""

from .builtin import (BUILTIN_ARCH, BUILTIN_DATASET, BUILTIN_EPOCHS, BUILTIN_SEED, builtin_teacher,
                      builtin_teacher_path, load_named_teacher)
from .capabilities import CAPABILITIES, has_batchnorm_statistics, teacher_capabilities
from .input_spec import InputSpec, load_at_spec, resolve_input_spec, spec_of
from .inspect import TeacherReport, builtin_report, inspect_checkpoint, report_for
from .load import (TeacherBundle, build_validated, check_finite, checkpoint_classes, freeze,
                   infer_arch, load_teacher, metadata_accuracy, read_state_dict)
from .onnx_teacher import (ONNX_ARCH, ONNX_CAPABILITIES, OnnxTeacher, is_onnx_path,
                           load_onnx_teacher, onnx_input_shape)
from .suggest import suggest_archs
from .train import train_classifier, train_teacher
from .uploads import (UPLOAD_TYPES, check_upload_size, file_digest, remember_upload, sanitise_name,
                      save_upload, upload_record)

__all__ = [
    "BUILTIN_ARCH", "BUILTIN_DATASET", "BUILTIN_EPOCHS", "BUILTIN_SEED", "CAPABILITIES", "InputSpec",
    "ONNX_ARCH", "ONNX_CAPABILITIES", "OnnxTeacher", "TeacherBundle", "TeacherReport", "UPLOAD_TYPES",
    "build_validated", "builtin_report", "builtin_teacher", "builtin_teacher_path", "check_finite",
    "check_upload_size", "checkpoint_classes", "file_digest", "freeze", "has_batchnorm_statistics",
    "infer_arch", "inspect_checkpoint", "is_onnx_path", "load_at_spec", "load_named_teacher",
    "load_onnx_teacher", "load_teacher", "metadata_accuracy", "onnx_input_shape", "read_state_dict",
    "remember_upload", "report_for", "resolve_input_spec", "sanitise_name", "save_upload", "spec_of",
    "suggest_archs", "teacher_capabilities", "train_classifier", "train_teacher", "upload_record",
]
