"""Executing an experiment spec: ``abkit run SPEC`` (and the replays ``abkit gate`` needs).

:func:`run_experiment` makes sure the store holds the spec's dataset (simulating it from
``[data.simulate]`` when missing), replays every model as a stored run named
``SPEC_NAME/LABEL`` and compares each model with the reference, paired by user. The spec
itself is parsed by :mod:`abkit.experiments.spec`, which runs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abkit.compare.runs import RunComparison, compare_runs
from abkit.data.info import dataset_origin
from abkit.data.store import Store, default_db_path, open_store
from abkit.errors import SpecError, param
from abkit.experiments.spec import ExperimentSpec
from abkit.replay.runner import BeforeStore, ReplayResult, replay
from abkit.simulate import SimulationConfig, simulate

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ExperimentRun", "ensure_dataset", "replay_model", "run_experiment"]


@dataclass(frozen=True, kw_only=True)
class ExperimentRun:
    """What ``abkit run SPEC`` did: the runs it stored (label -> run id) and their comparison
    with the reference model (None with a single model)."""

    spec: ExperimentSpec
    dataset: str
    simulated: bool
    runs: tuple[tuple[str, str], ...]
    fingerprint: str
    comparison: RunComparison | None
    notes: tuple[str, ...] = ()

    def run_id(self, label: str) -> str:
        for name, run_id in self.runs:
            if name == label:
                return run_id
        raise KeyError(label)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": str(self.spec.path),
            "name": self.spec.name,
            "dataset": self.dataset,
            "simulated": self.simulated,
            "fingerprint": self.fingerprint,
            "runs": {label: run_id for label, run_id in self.runs},
            "comparison": self.comparison.to_dict() if self.comparison else None,
            "notes": list(self.notes),
        }


def ensure_dataset(spec: ExperimentSpec, db: str | Path | None) -> bool:
    """Make sure the store holds the spec's dataset: simulate it from ``[data.simulate]`` when
    missing (returns True then). A missing dataset without simulator settings is an error."""
    path = Path(db) if db is not None else default_db_path()
    if path.exists():
        with open_store(path) as store:
            if store.has_dataset(spec.data.dataset):
                _check_simulated(spec, path, store)
                return False
    if spec.data.simulate is None:
        raise SpecError(
            f"{spec.path}: dataset '{spec.data.dataset}' is not in {path}, and [data] has no "
            "simulate table to create it; ingest it first or add [data.simulate]"
        )
    simulate(SimulationConfig(**spec.data.simulate, dataset=spec.data.dataset), path)
    return True


def _check_simulated(spec: ExperimentSpec, path: Path, store: Store) -> None:
    """A dataset the store already holds must be the one the spec's simulator settings
    describe; otherwise the spec would silently run on other data."""
    if spec.data.simulate is None:
        return
    wanted = SimulationConfig(**spec.data.simulate, dataset=spec.data.dataset).to_dict()
    origin = dataset_origin(store.con, spec.data.dataset)
    source, stored = origin if origin is not None else ("", {})
    differ = [
        f"{key} {stored.get(key)!r} vs {value!r}"
        for key, value in wanted.items()
        if key in stored and stored[key] != value
    ]
    if origin is not None and (source != "simulate" or differ):
        detail = "; ".join(differ) if differ else f"it came from {source}"
        raise SpecError(
            f"{spec.path}: dataset '{spec.data.dataset}' in {path} is not the one [data.simulate] "
            f"describes ({detail}); use another {param('db')} or dataset name"
        )


def replay_model(
    spec: ExperimentSpec,
    label: str,
    db: str | Path | None,
    *,
    progress: Any = None,
    check: BeforeStore | None = None,
) -> ReplayResult:
    """Replay the spec's model ``label`` on its dataset and split; the stored run is named
    ``SPEC_NAME/LABEL`` and replaces the earlier run of that name (``abkit run`` and
    ``abkit gate`` re-run a spec; the name means its latest run). Returns the
    :class:`abkit.replay.runner.ReplayResult`.

    Checks ``[data] fingerprint`` when the spec pins one, and then ``check`` (the
    ``before_store`` hook of :func:`abkit.replay.runner.replay`), after the evaluation and
    BEFORE the run is stored: a refused run leaves the store as it was."""
    model = spec.model(label)

    def before_store(
        result: ReplayResult, user_ids: np.ndarray, per_user: Mapping[str, np.ndarray]
    ) -> None:
        pinned = spec.data.fingerprint
        if pinned is not None and not result.fingerprint.startswith(pinned):
            raise SpecError(
                f"{spec.path}: mismatched data fingerprint: [data] fingerprint is {pinned[:12]}, "
                f"but dataset '{spec.data.dataset}' with split {result.split} gives "
                f"{result.fingerprint[:12]}; the data changed, update the fingerprint or "
                "restore the data (nothing was stored)"
            )
        if check is not None:
            check(result, user_ids, per_user)

    return replay(
        db,
        model=model.model,
        dataset=spec.data.dataset,
        split=spec.data.split,
        ks=spec.ks,
        params=dict(model.params),
        name=f"{spec.name}/{label}",
        progress=progress,
        replace=True,
        before_store=before_store,
    )


def run_experiment(
    spec: ExperimentSpec, db: str | Path | None, *, progress: Any = None
) -> ExperimentRun:
    """``abkit run SPEC``: simulate the dataset if needed, replay every model (stored runs
    named ``SPEC_NAME/LABEL``), then compare each model with the reference, paired by user
    (:func:`abkit.compare.runs.compare_runs` with the ``[compare]`` settings)."""
    simulated = ensure_dataset(spec, db)
    runs: list[tuple[str, str]] = []
    notes: list[str] = []
    fingerprint = ""
    order = [spec.compare.reference] + [
        m.label for m in spec.models if m.label != spec.compare.reference
    ]
    for label in order:
        result = replay_model(spec, label, db, progress=progress)
        runs.append((label, result.run_id))
        fingerprint = result.fingerprint
        notes += [f"{label}: {w}" for w in result.warnings]
    comparison = None
    if len(runs) > 1:
        comparison = compare_runs(
            db,
            [run_id for _, run_id in runs],
            metrics=list(spec.metrics),
            confidence=spec.compare.confidence,
            correction=spec.compare.correction,
            n_resamples=spec.compare.n_resamples,
            seed=spec.compare.seed,
        )
    return ExperimentRun(
        spec=spec,
        dataset=spec.data.dataset,
        simulated=simulated,
        runs=tuple(runs),
        fingerprint=fingerprint,
        comparison=comparison,
        notes=tuple(notes),
    )
