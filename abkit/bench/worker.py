"""``python -m abkit.bench.worker SPEC``: run one bench task in this (fresh) process.

SPEC is JSON ``{"task": name, "params": {...}, "result": path}``; the result file receives the
timed seconds, the work done and the check value (see :func:`abkit.bench.harness.run_worker`).

``$ABKIT_BENCH_HIDE_MODULES`` (comma-separated import names) makes those packages unimportable
in the worker, to see what a machine without them reports (``torch`` -> the LSTM reference is
skipped with its install line); the tests use it.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from collections.abc import Mapping

from abkit.bench import references, workloads
from abkit.bench.harness import TaskFunction, run_worker

TASKS: Mapping[str, TaskFunction] = {
    # data preparation (not reported)
    "prep-export": workloads.prep_export,
    "prep-als": workloads.prep_als,
    "prep-lstm": workloads.prep_lstm,
    "prep-offpolicy": workloads.prep_offpolicy,
    "prep-spark-export": workloads.prep_spark_export,
    # abkit
    "abkit-simulate": workloads.abkit_simulate,
    "abkit-ingest": workloads.abkit_ingest,
    "abkit-compare": workloads.abkit_compare,
    "abkit-compare-engine": workloads.abkit_compare_engine,
    "abkit-als-ranking": workloads.abkit_als_ranking,
    "abkit-als-gemm": workloads.abkit_als_gemm,
    "abkit-lstm": workloads.abkit_lstm,
    "abkit-offpolicy": workloads.abkit_offpolicy,
    "selfcheck-allocate": workloads.allocate,
    # references
    "ref-duckdb-copy": references.duckdb_copy,
    "ref-duckdb-group-by": references.duckdb_group_by,
    "ref-pandas-compare": references.pandas_compare,
    "ref-implicit-ranking": references.implicit_ranking,
    "ref-gemm-probe": references.gemm_probe,
    "ref-torch-lstm": references.torch_lstm,
    "ref-obp-loop-ips": references.obp_loop_ips,
}


HIDE_ENV = "ABKIT_BENCH_HIDE_MODULES"


class _Hidden(importlib.abc.MetaPathFinder):
    """Makes ``import NAME`` fail for the hidden top-level packages, as on a machine without
    them (libraries that merely look into ``sys.modules`` are not disturbed)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


def main() -> int:
    hidden = {n.strip() for n in os.environ.get(HIDE_ENV, "").split(",") if n.strip()}
    if hidden:
        sys.meta_path.insert(0, _Hidden(hidden))
    return run_worker(sys.argv[1], TASKS)


if __name__ == "__main__":
    sys.exit(main())
