"""``abkit run``, ``abkit baseline`` and ``abkit gate``: declarative experiments and CI gates.

* :mod:`abkit.experiments.spec` -- parse and validate ``experiments/*.toml`` (runs nothing);
* :mod:`abkit.experiments.runner` -- execute a spec: simulate the data if needed, replay its
  models as stored runs, compare them with the reference;
* :mod:`abkit.experiments.baseline` -- a stored run's per-user values as a committed JSON file;
* :mod:`abkit.experiments.gate` -- the regression decision against a baseline (one-sided paired
  tests, Holm across gates) and its reports (table, Markdown, JUnit).

Data flows one way: spec -> runner (replay) -> stored runs -> baseline / gate.
"""

from __future__ import annotations

from abkit.experiments.gate import GateReport, gate_run, gate_spec
from abkit.experiments.runner import ExperimentRun, run_experiment
from abkit.experiments.spec import ExperimentSpec, GateCheck, load_spec

__all__ = [
    "ExperimentRun",
    "ExperimentSpec",
    "GateCheck",
    "GateReport",
    "gate_run",
    "gate_spec",
    "load_spec",
    "run_experiment",
]
