"""``python -m abkit.gpu_check``: runnable anywhere; parity code exercised CPU-against-CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def _module() -> Any:
    import abkit.gpu_check

    return abkit.gpu_check


def test_runs_and_skips_or_passes(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "abkit.gpu_check",
            "--users",
            "800",
            "--items",
            "100",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(out.read_text())
    assert summary["als"]["status"] in ("ok", "skipped")
    assert summary["onnxruntime"]["status"] in ("ok", "skipped")


def test_parity_checks_pass_cpu_against_cpu() -> None:
    gpu_check = _module()
    data, users, items = gpu_check.synthetic(600, 100, 20, seed=1)
    als = gpu_check.check_als(data, users, items, device="cpu")
    assert als["status"] == "ok", als
    assert als["ndcg_relative_difference"] == 0.0
    assert als["same_factors_identical_lists"] == 1.0
    onnx = gpu_check.check_onnx(data, device="cpu")
    assert onnx["status"] == "ok", onnx
    assert onnx["max_logit_difference"] == 0.0
