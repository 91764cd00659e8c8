"""A stored run's command line (the report's "reproduce" column) parses back into the same config."""

from __future__ import annotations

import pytest

from kdci_core.cli import build_parser
from kdci_core.cli.common import config_from_args
from kdci_core.distill import DistillConfig
from kdci_core.distill.config import command_line
from kdci_core.runs.configs import canonical_config

CASES = [
    DistillConfig(),
    DistillConfig(method="fast", kdci=False, k="auto", seed=3, amp=False, log_every=0,
                  method_params={"g_steps": 5, "adv": 0.5}),
    DistillConfig(method="dfnd", preset="paper", teacher="t.pt", teacher_arch="lenet5", student="lenet5_half",
                  k=12, correction="balanced", tau=4.0, lr=0.05, wild_data="dataset:fashion-mnist"),
    DistillConfig(method="deepinv", ablation="random-lambda", fusion="add", attn_input="layernorm",
                  attn_init_gain=0.5, pca_dim=7, dictionary_source="s.pt", dictionary_source_arch="lenet5",
                  data_root="/data/x y", device="cpu", augment="none"),
    DistillConfig(method="dfnd", kdci=False, image_size=32, in_channels=3, mean=[0.5, 0.4, 0.3],
                  std=[0.25]),  # the teacher's input spec, given explicitly
]


@pytest.mark.parametrize("cfg", CASES, ids=lambda c: f"{c.method}-{c.preset}")
def test_command_line_round_trips(cfg):
    stored = {**cfg.resolve().to_dict(), "teacher_sha256": "ab" * 32}  # extra fields are ignored
    argv = command_line(stored)
    assert argv[:4] == ["python", "-m", "kdci_core", "distill"]
    again = config_from_args(build_parser(argv[3:]).parse_args(argv[3:])).resolve()
    # the command line stores paths resolved (one folder, one value): a run stored by it is
    # already in that form, so its command line gives it back exactly
    assert again.to_dict() == canonical_config(cfg.resolve().to_dict())
    assert config_from_args(build_parser(command_line(again.to_dict())[3:]).parse_args(
        command_line(again.to_dict())[3:])).resolve().to_dict() == again.to_dict()
