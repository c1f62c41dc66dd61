"""Experiment specs: ``experiments/NAME.toml`` declares data, split, models, metrics, the
baseline and the gates. Parsing validates everything up front and raises one-line
:class:`~abkit.errors.SpecError` messages that name the file, the table and the key.

A complete spec (every table but ``[data]``, ``[models.*]`` and ``[evaluation]`` is optional)::

    name = "ci"                          # default: the file name without .toml
    description = "ALS on a small simulated shop"

    [data]
    dataset = "ci"                       # dataset in the store
    split = "temporal"                   # abkit.replay.splits syntax (default "temporal")
    # simulate the dataset when the store does not hold it (fields of `abkit simulate`)
    simulate = { users = 800, items = 150, days = 7, pre_days = 14, seed = 3 }
    # fingerprint = "3f2a..."            # optional: refuse any other training data

    [models.als]                         # a label; `model` is the registered plug-in
    model = "als"
    params = { factors = 32, iterations = 8, seed = 1 }

    [models.popularity]
    model = "popularity"

    [evaluation]
    metrics = ["ndcg@10", "hit_rate@10"] # NAME@K; the run computes every metric at these K

    [compare]                            # `abkit run`: each model against the reference
    reference = "popularity"             # default: the first model
    confidence = 0.95
    correction = "holm"                  # across the metrics x models family
    n_resamples = 2000                   # paired bootstrap (0: t intervals only)
    seed = 0

    [gate]
    candidate = "als"                    # the model under test
    baseline = "ci.baseline.json"        # relative to this file
    alpha = 0.05                         # one-sided, per gate before the Holm adjustment
    test = "t"                           # "t" or "bootstrap"
    multiplicity = "holm"                # or "none"

    [[gate.checks]]
    metric = "ndcg@10"
    max_relative_drop = 0.05             # or "5%"; or max_absolute_drop = 0.01

Decisions: keys are checked at every level (an unknown key is an error with "did you mean",
never silently ignored); a model label is what runs are named, so it must be unique; the
gate baseline file may be missing while parsing (``abkit run`` creates the runs it is saved
from) and is required only by ``abkit gate``. Relative values (``max_relative_drop``, the
simulated ``lift`` and ``arm_lifts``) are read as the command line reads them
(:func:`abkit._util.parse_relative`): a bare number is a fraction in (-1, 1), a string with
``%`` is divided by 100 (``"5%"`` is 0.05), so ``max_relative_drop = 5`` is refused with "did
you mean 0.05 (5%)?"; ``max_absolute_drop`` is in the metric's own units and takes no ``%``.
A model's plug-in name is matched ignoring case when exactly one registered name matches
(``model = "ALS"`` is ``als``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from abkit._util import did_you_mean, parse_relative, unknown_choice
from abkit.errors import AbkitError, InputError, SpecError
from abkit.plugins import available_recommenders, create_recommender, resolve_recommender_name
from abkit.replay.metrics import PER_USER_METRICS, parse_metric
from abkit.replay.splits import parse_split
from abkit.simulate import SimulationConfig
from abkit.stats.multiplicity import CORRECTIONS

__all__ = [
    "GATE_METRICS",
    "CompareSpec",
    "DataSpec",
    "ExperimentSpec",
    "GateCheck",
    "GateSpec",
    "GateTest",
    "MarginType",
    "ModelSpec",
    "Multiplicity",
    "load_spec",
]

MarginType = Literal["relative", "absolute"]
GateTest = Literal["t", "bootstrap"]
Multiplicity = Literal["holm", "none"]


@dataclass(frozen=True, kw_only=True)
class GateCheck:
    """One gate: ``metric`` may not drop by more than ``max_drop`` (relative or absolute)."""

    metric: str
    max_drop: float
    margin_type: MarginType = "relative"

    def __post_init__(self) -> None:
        if self.margin_type not in ("relative", "absolute"):
            raise InputError(
                f"gate {self.metric}: margin type must be 'relative' or 'absolute', "
                f"got {self.margin_type!r}"
            )
        if not (math.isfinite(self.max_drop) and self.max_drop >= 0):
            raise InputError(
                f"gate {self.metric}: the allowed drop must be a non-negative number, "
                f"got {self.max_drop}"
            )
        if self.margin_type == "relative" and self.max_drop >= 1:
            raise InputError(
                f"gate {self.metric}: a relative drop is a fraction below 1 (0.01 = 1%), "
                f"got {self.max_drop}"
            )

    def describe(self) -> str:
        """``ndcg@10 may not drop by more than 1% (relative)``."""
        amount = (
            f"{100 * self.max_drop:g}%" if self.margin_type == "relative" else f"{self.max_drop:g}"
        )
        return f"{self.metric} may not drop by more than {amount} ({self.margin_type})"

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "max_drop": self.max_drop, "margin_type": self.margin_type}


# Metrics a gate may guard: higher is better for each. popularity_bias has no better
# direction and coverage is one number per run, so neither can be a paired gate.
GATE_METRICS = ("hit_rate", "precision", "recall", "ndcg", "mrr", "map", "novelty")


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One model of the experiment: ``label`` names its runs, ``model`` the plug-in."""

    label: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "model": self.model, "params": dict(self.params)}


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """Where the data comes from: a dataset of the store, simulated when missing."""

    dataset: str
    split: str = "temporal"
    simulate: Mapping[str, Any] | None = None
    fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "simulate": dict(self.simulate) if self.simulate is not None else None,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, kw_only=True)
class CompareSpec:
    """How ``abkit run`` compares the models (see :func:`abkit.compare.runs.compare_runs`)."""

    reference: str
    confidence: float = 0.95
    correction: str = "holm"
    n_resamples: int = 2000
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "confidence": self.confidence,
            "correction": self.correction,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
        }


@dataclass(frozen=True, kw_only=True)
class GateSpec:
    """The gates: ``candidate`` against the baseline file, one :class:`GateCheck` each."""

    candidate: str
    baseline: Path
    checks: tuple[GateCheck, ...]
    alpha: float = 0.05
    test: GateTest = "t"
    multiplicity: Multiplicity = "holm"
    n_resamples: int = 2000
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "baseline": str(self.baseline),
            "checks": [c.to_dict() for c in self.checks],
            "alpha": self.alpha,
            "test": self.test,
            "multiplicity": self.multiplicity,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
        }


@dataclass(frozen=True, kw_only=True)
class ExperimentSpec:
    """A parsed, validated ``experiments/*.toml``."""

    path: Path
    name: str
    description: str
    data: DataSpec
    models: tuple[ModelSpec, ...]
    metrics: tuple[str, ...]
    ks: tuple[int, ...]
    compare: CompareSpec
    gate: GateSpec | None

    def model(self, label: str) -> ModelSpec:
        for m in self.models:
            if m.label == label:
                return m
        raise SpecError(
            f"{self.path}: " + unknown_choice("model label", label, [m.label for m in self.models])
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.name,
            "description": self.description,
            "data": self.data.to_dict(),
            "models": [m.to_dict() for m in self.models],
            "metrics": list(self.metrics),
            "ks": list(self.ks),
            "compare": self.compare.to_dict(),
            "gate": self.gate.to_dict() if self.gate else None,
        }


# -- parsing helpers ---------------------------------------------------------------------------


class _Table:
    """A TOML table with its location, for messages like ``[gate] alpha must be ...``."""

    def __init__(self, path: Path, where: str, raw: Any) -> None:
        self.path = path
        self.where = where
        if not isinstance(raw, dict):
            raise self.error(f"{where} must be a table, got {_show(raw)}")
        self.raw: dict[str, Any] = raw

    def error(self, message: str) -> SpecError:
        return SpecError(f"{self.path}: {message}")

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        for key in self.raw:
            if key not in allowed:
                raise self.error(
                    f"unknown key '{key}' in {self.where}{did_you_mean(key, allowed)}; "
                    f"allowed: {', '.join(allowed)}"
                )

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.raw:
            if default is ...:
                raise self.error(f"missing key '{key}' in {self.where}")
            return default
        value = self.raw[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok = True
            value = float(value)
        if not ok:
            names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            raise self.error(f"{self.where} {key} must be {names}, got {_show(value)}")
        return value

    def table(self, key: str, where: str | None = None) -> _Table | None:
        if key not in self.raw:
            return None
        return _Table(self.path, where or f"[{key}]", self.raw[key])


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _relative(table: _Table, where: str, value: Any, **rule: Any) -> float:
    """A relative value of the spec read as the command line reads it (``0.05`` or ``"5%"``,
    :func:`abkit._util.parse_relative`); ``where`` names the table and key."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise table.error(
            f'{where} must be a number or a percentage such as "5%", got {_show(value)}'
        )
    try:
        return parse_relative(value, quote_percent=True, **rule)
    except InputError as exc:
        shown = json.dumps(value) if isinstance(value, str) else _show(value)
        raise table.error(f"{where} = {shown}: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport (a dependency)
        import tomli as tomllib
    if not path.exists():
        raise SpecError(f"{path}: no such spec file")
    if path.is_dir():
        raise SpecError(f"{path}: is a directory, expected a .toml spec file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not a TOML spec (not UTF-8 text: byte {exc.start} is "
            f"0x{raw[exc.start]:02x}); give an experiment spec such as experiments/ci.toml"
        ) from None
    if "\x00" in text:
        raise SpecError(
            f"{path}: not a TOML spec (a binary file: it holds NUL bytes); give an experiment "
            "spec such as experiments/ci.toml"
        )
    try:
        return tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: invalid TOML ({exc})") from None
    except RecursionError:
        raise SpecError(f"{path}: invalid TOML (nested too deeply)") from None


def _known_models() -> list[str]:

    return [info.name for info in available_recommenders()]


# -- sections --------------------------------------------------------------------------------


def _data(path: Path, top: _Table) -> DataSpec:
    table = top.table("data")
    if table is None:
        raise top.error('missing table [data] (at least: dataset = "NAME")')
    table.check_keys(("dataset", "split", "simulate", "fingerprint"))
    dataset = table.get("dataset", str)
    if not dataset.strip():
        raise table.error("[data] dataset must not be empty")
    split = table.get("split", str, "temporal")
    try:
        parse_split(split)
    except AbkitError as exc:
        raise table.error(f"[data] split: {exc}") from None
    simulate = None
    sim = table.table("simulate", "[data.simulate]")
    if sim is not None:
        simulate = _simulate(sim, dataset)
    fingerprint = table.get("fingerprint", str, None)
    return DataSpec(dataset=dataset, split=split, simulate=simulate, fingerprint=fingerprint)


def _simulate(sim: _Table, dataset: str) -> dict[str, Any]:

    allowed = tuple(f.name for f in fields(SimulationConfig) if f.name not in ("dataset",))
    sim.check_keys(allowed)
    values = dict(sim.raw)
    for key in ("arms", "split", "arm_lifts"):
        if key in values and isinstance(values[key], list):
            values[key] = tuple(values[key])
    # relative lifts, typed as on the command line: 0.2 or "20%"
    if "lift" in values:
        values["lift"] = _relative(sim, "[data.simulate] lift", values["lift"])
    if isinstance(values.get("arm_lifts"), tuple):
        values["arm_lifts"] = tuple(
            _relative(sim, f"[data.simulate] arm_lifts[{j}]", lift)
            for j, lift in enumerate(values["arm_lifts"])
        )
    try:
        SimulationConfig(**values, dataset=dataset)
    except AbkitError as exc:
        raise sim.error(f"[data.simulate]: {exc}") from None
    except TypeError as exc:
        raise sim.error(f"[data.simulate]: {exc}") from None
    return values


def _models(path: Path, top: _Table) -> tuple[ModelSpec, ...]:
    table = top.table("models")
    if table is None or not table.raw:
        raise top.error('missing table [models.LABEL] (e.g. [models.als] with model = "als")')
    known: list[str] | None = None
    out = []
    for label, raw in table.raw.items():
        entry = _Table(path, f"[models.{label}]", raw)
        entry.check_keys(("model", "params"))
        model = entry.get("model", str)
        known = known if known is not None else _known_models()
        try:
            model = resolve_recommender_name(model, known)  # "ALS" is als
        except InputError as exc:
            raise entry.error(f"[models.{label}] {exc}") from None
        params = entry.get("params", dict, {})
        try:
            create_recommender(model, params)
        except AbkitError as exc:
            raise entry.error(f"[models.{label}] {exc}") from None
        out.append(ModelSpec(label=label, model=model, params=dict(params)))
    return tuple(out)


def _metrics(
    top: _Table, simulate: Mapping[str, Any] | None
) -> tuple[tuple[str, ...], tuple[int, ...]]:

    table = top.table("evaluation")
    if table is None:
        raise top.error('missing table [evaluation] (e.g. metrics = ["ndcg@10"])')
    table.check_keys(("metrics",))
    raw = table.get("metrics", list)
    if not raw:
        raise table.error('[evaluation] metrics must name at least one metric, e.g. "ndcg@10"')
    metrics: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            raise table.error(
                f'[evaluation] metrics: expected strings like "ndcg@10", got {_show(item)}'
            )
        try:
            spec = parse_metric(item)
        except AbkitError as exc:
            raise table.error(f"[evaluation] metrics: {exc}") from None
        if spec.name not in PER_USER_METRICS:
            raise table.error(
                f"[evaluation] metrics: {spec} is one number per run, not per user; "
                f"per-user metrics: {', '.join(PER_USER_METRICS)}"
            )
        items = (simulate or {}).get("items")
        if isinstance(items, int) and spec.k > items:
            raise table.error(
                f"[evaluation] metrics: K={spec.k} in {item!r} exceeds the {items} simulated items"
            )
        if str(spec) not in metrics:
            metrics.append(str(spec))
    ks = tuple(sorted({int(m.split("@")[1]) for m in metrics}))
    return tuple(metrics), ks


def _compare(top: _Table, models: tuple[ModelSpec, ...]) -> CompareSpec:

    labels = [m.label for m in models]
    table = top.table("compare")
    if table is None:
        return CompareSpec(reference=labels[0])
    table.check_keys(("reference", "confidence", "correction", "n_resamples", "seed"))
    reference = table.get("reference", str, labels[0])
    if reference not in labels:
        raise table.error(
            "[compare] reference: " + unknown_choice("model label", reference, labels)
        )
    confidence = table.get("confidence", float, 0.95)
    if not 0 < confidence < 1:
        raise table.error(f"[compare] confidence must be between 0 and 1, got {confidence:g}")
    correction = table.get("correction", str, "holm")
    if correction not in CORRECTIONS:
        raise table.error("[compare] " + unknown_choice("correction", correction, CORRECTIONS))
    n_resamples = table.get("n_resamples", int, 2000)
    if n_resamples != 0 and n_resamples < 100:
        raise table.error(f"[compare] n_resamples must be 0 or at least 100, got {n_resamples}")
    seed = table.get("seed", int, 0)
    return CompareSpec(
        reference=reference,
        confidence=confidence,
        correction=correction,
        n_resamples=n_resamples,
        seed=seed,
    )


def _gate(
    path: Path, top: _Table, models: tuple[ModelSpec, ...], metrics: tuple[str, ...]
) -> GateSpec | None:
    table = top.table("gate")
    if table is None:
        return None
    table.check_keys(
        ("candidate", "baseline", "alpha", "test", "multiplicity", "n_resamples", "seed", "checks")
    )
    labels = [m.label for m in models]
    candidate = table.get("candidate", str, labels[-1] if len(labels) == 1 else ...)
    if candidate not in labels:
        raise table.error("[gate] candidate: " + unknown_choice("model label", candidate, labels))
    baseline_raw = table.get("baseline", str, None)
    if baseline_raw is None:
        raise table.error(
            'missing baseline: [gate] needs baseline = "FILE.json" (save one with '
            "`abkit baseline save RUN --out FILE.json`)"
        )
    baseline = (
        (path.parent / baseline_raw) if not Path(baseline_raw).is_absolute() else Path(baseline_raw)
    )
    alpha = table.get("alpha", float, 0.05)
    if not 0 < alpha < 0.5:
        raise table.error(f"[gate] alpha must be between 0 and 0.5, got {alpha:g}")
    test = table.get("test", str, "t")
    if test not in ("t", "bootstrap"):
        raise table.error("[gate] " + unknown_choice("test", test, ("t", "bootstrap")))
    multiplicity = table.get("multiplicity", str, "holm")
    if multiplicity not in ("holm", "none"):
        raise table.error(
            "[gate] " + unknown_choice("multiplicity", multiplicity, ("holm", "none"))
        )
    n_resamples = table.get("n_resamples", int, 2000)
    if n_resamples < 100:
        raise table.error(f"[gate] n_resamples must be at least 100, got {n_resamples}")
    seed = table.get("seed", int, 0)
    raw_checks = table.get("checks", list, [])
    if not raw_checks:
        raise table.error(
            "[gate] declares no checks; add [[gate.checks]] with metric and max_relative_drop"
        )
    checks = []
    for i, raw in enumerate(raw_checks, start=1):
        check = _Table(path, f"[[gate.checks]] #{i}", raw)
        check.check_keys(("metric", "max_relative_drop", "max_absolute_drop"))
        metric = check.get("metric", str)
        if metric not in metrics:
            raise check.error(
                f"[[gate.checks]] #{i}: metric '{metric}' is not evaluated"
                f"{did_you_mean(metric, metrics)}; [evaluation] metrics: {', '.join(metrics)}"
            )
        name = metric.split("@")[0]
        if name not in GATE_METRICS:
            raise check.error(
                f"[[gate.checks]] #{i}: {metric} cannot be gated (no better direction); "
                f"gate one of: {', '.join(GATE_METRICS)}"
            )
        has_rel = "max_relative_drop" in check.raw
        has_abs = "max_absolute_drop" in check.raw
        if has_rel == has_abs:
            raise check.error(
                f"[[gate.checks]] #{i} ({metric}): give exactly one of max_relative_drop "
                "(0.01 = 1%) or max_absolute_drop"
            )
        key = "max_relative_drop" if has_rel else "max_absolute_drop"
        drop = _relative(
            check,
            f"[[gate.checks]] #{i} ({metric}): {key}",
            check.raw[key],
            noun="drop",
            signed=False,
            absolute=not has_rel,
            absolute_hint=" (or give max_relative_drop for a relative drop)",
        )
        try:
            checks.append(
                GateCheck(
                    metric=metric, max_drop=drop, margin_type="relative" if has_rel else "absolute"
                )
            )
        except AbkitError as exc:
            raise check.error(f"[[gate.checks]] #{i}: {exc}") from None
    if len({c.metric for c in checks}) != len(checks):
        raise table.error("[gate] checks: each metric may be gated once")
    return GateSpec(
        candidate=candidate,
        baseline=baseline,
        checks=tuple(checks),
        alpha=alpha,
        test=test,
        multiplicity=multiplicity,
        n_resamples=n_resamples,
        seed=seed,
    )


def load_spec(path: str | Path) -> ExperimentSpec:
    """Parse and validate an experiment spec (format in the module docstring).

    Raises :class:`SpecError` with ``PATH: [table] key ...`` for invalid TOML, an unknown key
    (with "did you mean"), a wrong type, an unknown model / parameter / metric / K / split,
    gate checks on metrics that are not evaluated, and a gate without a baseline.
    """
    path = Path(path)
    top = _Table(path, "the top level", _read_toml(path))
    top.check_keys(("name", "description", "data", "models", "evaluation", "compare", "gate"))
    name = top.get("name", str, path.stem)
    description = top.get("description", str, "")
    data = _data(path, top)
    models = _models(path, top)
    metrics, ks = _metrics(top, data.simulate)
    compare = _compare(top, models)
    gate = _gate(path, top, models, metrics)
    return ExperimentSpec(
        path=path,
        name=name,
        description=description,
        data=data,
        models=models,
        metrics=metrics,
        ks=ks,
        compare=compare,
        gate=gate,
    )
