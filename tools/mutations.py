"""A mutation check that keeps the suite honest: each named fault is a small patch applied to a
temporary copy of the repository, and the tests that should catch it are run there. A fault is
*caught* when those tests fail (for ``expect="all"``: every one of them, e.g. one learning test
per method). Prints caught / total; exits 1 when a fault survives (or a patch no longer applies).

    python tools/mutations.py                 # every fault (about 10 min on a 2-core CPU)
    python tools/mutations.py kd-term-zeroed  # some of them, by name
    python tools/mutations.py --list

The last result is recorded in docs/TESTING.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEARN = "tests/learning/test_learning.py"


@dataclass
class Fault:
    name: str
    file: str
    old: str
    new: str
    tests: list[str]
    expect: str = "any"        # "any": at least one test fails; "all": every listed test fails
    why: str = ""
    replacements: list[tuple[str, str, str]] = field(default_factory=list)  # more (file, old, new)


def _learns(method: str) -> str:
    return f"{LEARN}::test_every_method_learns_on_the_embedded_default[{method}]"


FAULTS = [
    Fault("kd-term-zeroed", "kdci_core/distill/loop.py",
          '"kd": kd_loss(s_hat, t, self.tau, weights=weights)',
          '"kd": 0.0 * kd_loss(s_hat, t, self.tau, weights=weights)',
          [_learns(m) for m in ("cmi", "dafl", "deepinv", "dfnd", "fast", "mosaickd")], expect="all",
          why="the student gets no signal from the teacher: every method's learning test fails"),
    Fault("balanced-correction-skipped", "kdci_core/distill/loop.py",
          'if cfg.correction == "balanced" else None', 'if False else None',
          [f"{LEARN}::test_balanced_makes_the_drawn_batches_flatter_than_none"]),
    Fault("reweight-ignored", "kdci_core/distill/loop.py",
          "weights = self.reweighter(t) if self.reweighter is not None else None", "weights = None",
          [f"{LEARN}::test_reweight_weights_reach_the_kd_loss_as_specified"]),
    Fault("kdci-fusion-dropped", "kdci_core/distill/loop.py",
          "return self.plugin(s) if self.plugin is not None else s", "return s",
          [f"{LEARN}::test_kdci_on_changes_the_student_logits_in_the_loss_and_off_does_not"]),
    Fault("ablation-random-lambda-ignored", "kdci_core/kdci/plugin.py",
          'lambda_mode="random" if ablation == "random-lambda" else "attention"', 'lambda_mode="attention"',
          [f"{LEARN}::test_random_lambda_ablation_replaces_the_attention"]),
    Fault("ablation-random-prototypes-ignored", "kdci_core/kdci/plugin.py",
          'if self.ablation == "random-prototypes":', "if False:",
          [f"{LEARN}::test_random_prototypes_ablation_replaces_the_cluster_means"]),
    Fault("ablation-uniform-proportions-ignored", "kdci_core/kdci/plugin.py",
          'elif self.ablation == "uniform-proportions":', "elif False:",
          [f"{LEARN}::test_uniform_proportions_ablation_replaces_p_z_by_uniform"]),
    Fault("dictionary-proportions-uniform", "kdci_core/kdci/dictionary.py",
          "proportions_np = (counts / n).astype(np.float32)",
          "proportions_np = np.full(len(counts), 1.0 / len(counts), dtype=np.float32)",
          ["tests/kdci/test_kdci.py", f"{LEARN}::test_uniform_proportions_ablation_replaces_p_z_by_uniform"],
          replacements=[("kdci_core/kdci/dictionary.py", "proportions=(counts / n).float()",
                         "proportions=torch.full_like(counts, 1.0 / len(counts)).float()")]),
    Fault("bn-statistics-hooks-removed", "kdci_core/methods/losses.py",
          "    hooks = [BNStatsHook(m, momentum, instance_means) for m in model.modules()",
          "    hooks = [] and [BNStatsHook(m, momentum, instance_means) for m in model.modules()",
          ["tests/methods/test_methods.py", "tests/methods/test_losses.py", "tests/methods/test_cmi.py"]),
    Fault("checkpoint-written-after-the-metrics", "kdci_core/runs/recorder.py",
          "        save_state(state, self.run.path(CHECKPOINT))\n        self.run.append_metrics(record)\n",
          "        self.run.append_metrics(record)\n        save_state(state, self.run.path(CHECKPOINT))\n",
          ["tests/runs/test_recorder.py", "tests/runs/test_durability.py"]),
    Fault("allowed-folder-check-skipped", "kdci_core/common/allowed_paths.py",
          "if any(resolved.is_relative_to(root) for root in roots):", "if True:",
          ["tests/common/test_allowed_paths.py"]),
    Fault("torchscript-loaded", "kdci_core/models/checkpoint_files.py",
          "def refuse_code(path, names) -> None:\n", "def refuse_code(path, names) -> None:\n    return\n",
          ["tests/teachers/test_untrusted_files.py"]),
    Fault("zip-bomb-unchecked", "kdci_core/common/limits.py",
          "    if inflated > BOMB_FLOOR and inflated > BOMB_RATIO * max(compressed, 1):",
          "    if False:",
          ["tests/teachers/test_untrusted_files.py"]),
    Fault("walk-follows-links-out", "kdci_core/data/walk.py",
          "        if real.is_relative_to(self.within):\n            return True\n",
          "        return True\n", ["tests/data/test_walk.py"]),
    Fault("status-transitions-unchecked", "kdci_core/runs/store.py",
          "        check_transition(self.run_id, state.get(\"status\"), status, expect)\n", "",
          ["tests/runs/test_transitions.py"]),
    Fault("teacher-needs-ignored", "kdci_core/methods/needs.py",
          "    reason = unmet_reason(method, capabilities)\n    if reason is None:\n",
          "    reason = unmet_reason(method, capabilities)\n    if True:\n",
          ["tests/teachers/test_onnx_teacher.py"]),
]


def copy_repo(dest: Path) -> None:
    """The working tree as git sees it (tracked and untracked, not ignored) into ``dest``."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name, follow_symlinks=False)


def apply(root: Path, fault: Fault) -> None:
    for file, old, new in [(fault.file, fault.old, fault.new), *fault.replacements]:
        path = root / file
        text = path.read_text()
        if text.count(old) != 1:
            raise SystemExit(f"{fault.name}: the patch no longer applies: {file} holds the line "
                             f"{old.strip()[:60]!r} {text.count(old)} time(s); update tools/mutations.py")
        path.write_text(text.replace(old, new))


def outcomes(xml: Path) -> dict[str, bool]:
    """test node id -> passed, from pytest's JUnit XML."""
    out = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        failed = any(child.tag in ("failure", "error") for child in case)
        skipped = any(child.tag == "skipped" for child in case)
        if not skipped:
            out[f"{case.get('classname')}::{case.get('name')}"] = not failed
    return out


def run_fault(fault: Fault, base: Path) -> tuple[bool, str, float]:
    started = time.time()
    with tempfile.TemporaryDirectory(prefix=f"mut-{fault.name}-") as tmp:
        root = Path(tmp) / "repo"
        shutil.copytree(base, root, symlinks=True)
        apply(root, fault)
        home = Path(tmp) / "home"
        xml = Path(tmp) / "report.xml"
        env = {**os.environ, "KDCI_HOME": str(home), "KDCI_NUM_THREADS": os.environ.get("KDCI_NUM_THREADS", "1"),
               "PYTHONPATH": str(root)}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x" if fault.expect == "any" else "-q",
                               f"--junitxml={xml}", *fault.tests], cwd=root, env=env, capture_output=True, text=True)
        results = outcomes(xml) if xml.exists() else {}
    failed = [name for name, ok in results.items() if not ok]
    if not results:
        return False, f"no test ran (pytest exit {proc.returncode}): {proc.stdout[-300:]}", time.time() - started
    caught = len(failed) == len(results) if fault.expect == "all" else bool(failed)
    detail = f"{len(failed)} of {len(results)} test(s) failed" + (f" (e.g. {failed[0].split('.')[-1]})" if failed else "")
    return caught, detail, time.time() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="faults to apply (default: all)")
    ap.add_argument("--list", action="store_true", help="list the faults and exit")
    args = ap.parse_args()
    if args.list:
        for f in FAULTS:
            print(f"{f.name:<38} {f.file}  ->  {', '.join(f.tests)}")
        return 0
    unknown = sorted(set(args.names) - {f.name for f in FAULTS})
    if unknown:
        ap.error(f"unknown fault(s): {', '.join(unknown)}")
    chosen = [f for f in FAULTS if not args.names or f.name in args.names]
    total_start, caught = time.time(), 0
    with tempfile.TemporaryDirectory(prefix="mut-base-") as tmp:
        base = Path(tmp) / "repo"
        copy_repo(base)
        for fault in chosen:
            ok, detail, seconds = run_fault(fault, base)
            caught += ok
            print(f"{'caught ' if ok else 'MISSED '} {fault.name:<38} {seconds:6.0f} s  {detail}", flush=True)
    print(f"\n{caught} / {len(chosen)} faults caught in {time.time() - total_start:.0f} s")
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
