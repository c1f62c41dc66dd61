"""``python -m abkit.bench.worker SPEC``: run one bench task in this (fresh) process.

SPEC is JSON ``{"task": name, "params": {...}, "result": path}``; the result file receives the
timed seconds, the work done and the check value (see :func:`abkit.bench.harness.run_worker`).

``$ABKIT_BENCH_HIDE_MODULES`` (comma-separated import names) makes those packages unimportable
in the worker, to see what a machine without them reports (``torch`` -> the LSTM reference is
skipped with its install line); the tests use it.
"""

from __future__ import annotations

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
    # abkit
    "abkit-simulate": workloads.abkit_simulate,
    "abkit-ingest": workloads.abkit_ingest,
    "abkit-compare": workloads.abkit_compare,
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


def main() -> int:
    for name in filter(None, os.environ.get(HIDE_ENV, "").split(",")):
        sys.modules[name.strip()] = None  # type: ignore[assignment]  # import now fails
    return run_worker(sys.argv[1], TASKS)


if __name__ == "__main__":
    sys.exit(main())
