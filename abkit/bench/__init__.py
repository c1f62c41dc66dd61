"""``abkit bench``: abkit's hot paths measured against what users would otherwise pick.

Every workload and every reference runs in a fresh subprocess (:mod:`abkit.bench.harness`),
so wall time covers only the work and peak memory is that process's own. Results are ratios
within one run on one machine; README.md (Benchmark details) holds the measured table and
the complexity notes.
"""

from __future__ import annotations

from abkit.bench.harness import Measurement
from abkit.bench.runner import WORKLOADS, BenchLine, BenchReport, BenchSizes, run_bench

__all__ = ["WORKLOADS", "BenchLine", "BenchReport", "BenchSizes", "Measurement", "run_bench"]
