"""Compare replay runs: ``abkit compare RUN_A RUN_B [RUN_C ...]``.

The first run is the reference; every other run is compared with it, paired by user (ranking
runs) or by logged round (off-policy runs). The runs must share the split and the data
fingerprint, else pairing would compare different test users and the comparison is refused
with the reason.

Ranking runs: per metric and model, :func:`abkit.stats.paired.compare_paired` (mean and
relative difference, paired t and bootstrap intervals, Fieller interval of the relative
difference, Cohen's d_z, the unpaired interval for contrast, McNemar for 0/1 metrics). The
p-values of the whole metrics x models family are adjusted together (Holm by default, or
Benjamini-Hochberg...; :mod:`abkit.stats.multiplicity`).

Off-policy runs: per estimator and policy, :func:`abkit.stats.paired.paired_offpolicy_difference`
on the rounds both runs scored, with its variance clustered by randomisation unit (the logged
round's user; the slate or impression for impression-level datasets), and optionally the
``--claim`` check of the relative lift (:func:`abkit.stats.means.compare_estimates`, the same
Fieller claim test as ``abkit compare`` on A/B arms): "does the personalised policy beat
random by 20%?" from logs alone.

Results lead with effect sizes and intervals: with thousands of users every difference is
"significant", so a p-value says little about whether a difference matters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

from abkit._util import TableDisplay, unknown_choice
from abkit.data.runs_sql import (
    fetch_runs,
    paired_rounds,
    paired_user_metrics,
    run_estimator_names,
    run_metric_names,
)
from abkit.data.store import open_store
from abkit.errors import InputError, StoreError, param
from abkit.stats.means import compare_estimates
from abkit.stats.multiplicity import CORRECTIONS, adjust
from abkit.stats.paired import compare_paired, paired_offpolicy_difference

if TYPE_CHECKING:
    from abkit.data.runs_sql import RunRecord
    from abkit.stats.paired import OffPolicyDifference, PairedComparison
    from abkit.stats.results import ClaimCheck

__all__ = [
    "MetricComparison",
    "OffPolicyComparison",
    "RunComparison",
    "check_comparable",
    "compare_runs",
    "display_labels",
]

OffPolicyEstimatorName = Literal["ips", "snips", "dr"]


@dataclass(frozen=True, kw_only=True)
class MetricComparison:
    """One metric, one run against the reference run, paired over users."""

    metric: str
    reference: str
    reference_run: str
    candidate: str
    candidate_run: str
    result: PairedComparison
    p_adjusted: float
    users_unpaired: int

    def to_dict(self) -> dict[str, Any]:
        out = {
            "metric": self.metric,
            "reference": self.reference,
            "reference_run": self.reference_run,
            "candidate": self.candidate,
            "candidate_run": self.candidate_run,
            "p_adjusted": self.p_adjusted,
            "users_unpaired": self.users_unpaired,
        }
        out.update(self.result.to_dict())
        return out


@dataclass(frozen=True, kw_only=True)
class OffPolicyComparison:
    """One estimator, one policy against the reference policy, paired over logged rounds."""

    estimator: str
    reference: str
    reference_run: str
    candidate: str
    candidate_run: str
    result: OffPolicyDifference
    p_adjusted: float
    claim: ClaimCheck | None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "estimator": self.estimator,
            "reference": self.reference,
            "reference_run": self.reference_run,
            "candidate": self.candidate,
            "candidate_run": self.candidate_run,
            "p_adjusted": self.p_adjusted,
            "claim": self.claim.to_dict() if self.claim is not None else None,
        }
        out.update(self.result.to_dict())
        return out


@dataclass(frozen=True, kw_only=True)
class RunComparison(TableDisplay):
    """Every comparison of ``abkit compare RUN_A RUN_B ...`` (``runs[0]`` is the reference)."""

    kind: Literal["ranking", "offpolicy"]
    runs: tuple[RunRecord, ...]
    metrics: tuple[str, ...]
    confidence: float
    correction: str
    n_resamples: int
    seed: int
    rows: tuple[MetricComparison, ...] = ()
    offpolicy: tuple[OffPolicyComparison, ...] = ()
    paired_users: int = 0
    paired_rounds: int = 0
    paired_units: int = 0  # off-policy: the independent units (clusters) of the paired rounds
    notes: tuple[str, ...] = field(default=())

    @property
    def reference(self) -> RunRecord:
        return self.runs[0]

    def table_rows(self) -> list[dict[str, Any]]:
        """One row per metric (or estimator) and run against the reference: the means, the
        relative difference and its paired interval, the adjusted p-value (``to_pandas()``,
        the notebook display under the forest plot)."""
        rows: list[dict[str, Any]] = []
        for m in self.rows:
            c = m.result
            rows.append(
                {
                    "metric": m.metric, "reference": m.reference, "candidate": m.candidate,
                    "n": c.n, "mean_reference": c.mean_baseline,
                    "mean_candidate": c.mean_candidate, "difference": c.difference,
                    "relative_difference": c.relative_difference,
                    "relative_ci_low": c.relative_ci_low, "relative_ci_high": c.relative_ci_high,
                    "p_value": c.p_value, "p_adjusted": m.p_adjusted,
                }
            )  # fmt: skip
        for o in self.offpolicy:
            d = o.result
            rows.append(
                {
                    "estimator": o.estimator, "reference": o.reference, "candidate": o.candidate,
                    "value_reference": d.value_a, "value_candidate": d.value_b,
                    "relative_difference": d.relative_difference,
                    "relative_ci_low": d.relative_ci_low, "relative_ci_high": d.relative_ci_high,
                    "p_adjusted": o.p_adjusted,
                    "claim_verdict": None if o.claim is None else o.claim.verdict,
                }
            )  # fmt: skip
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "reference": self.reference.run_id,
            "runs": [r.to_provenance_dict() for r in self.runs],
            "metrics": list(self.metrics),
            "confidence": self.confidence,
            "correction": self.correction,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "paired_users": self.paired_users,
            "paired_rounds": self.paired_rounds,
            "paired_units": self.paired_units,
            "comparisons": [r.to_dict() for r in self.rows],
            "offpolicy": [r.to_dict() for r in self.offpolicy],
            "notes": list(self.notes),
        }


def _kind_words(kind: str) -> str:
    """``a ranking`` / ``an off-policy``: a run's kind in a sentence."""
    return "an off-policy" if kind == "offpolicy" else f"a {kind}"


def check_comparable(runs: Sequence[RunRecord]) -> None:
    """Refuse, with the reason, runs that cannot be paired: mixed kinds, different splits or
    different data fingerprints (then their test users or logs are not the same)."""
    first = runs[0]
    for other in runs[1:]:
        # two datasets are named as the reason unless they hold the same data (same split and
        # fingerprint: the same file ingested twice pairs as before)
        if other.dataset != first.dataset and (
            other.split != first.split or other.fingerprint != first.fingerprint
        ):
            raise InputError(
                f"runs {first.run_id} and {other.run_id} were replayed on different datasets "
                f"({first.dataset} vs {other.dataset}), so their users cannot be paired; "
                "compare runs of one dataset"
            )
        if other.kind != first.kind:
            raise InputError(
                f"run {other.run_id} is {_kind_words(other.kind)} run but {first.run_id} is "
                f"{_kind_words(first.kind)} run; compare runs of one kind"
            )
        if other.split != first.split:
            raise InputError(
                f"runs {first.run_id} and {other.run_id} use different splits ({first.split} vs "
                f"{other.split}): their test users differ, so they cannot be paired; replay both "
                f"with the same {param('split')}"
            )
        if other.fingerprint != first.fingerprint:
            raise InputError(
                f"runs {first.run_id} and {other.run_id} were replayed on different data "
                f"(fingerprint {first.fingerprint[:12]} vs {other.fingerprint[:12]}), so they "
                "cannot be paired"
            )


def display_labels(records: Sequence[RunRecord]) -> dict[str, str]:
    """Run id -> what tables call it: its name or model, or its id when that is ambiguous."""
    labels = [r.label for r in records]
    return {r.run_id: (r.label if labels.count(r.label) == 1 else r.run_id) for r in records}


def _order_metrics(names: set[str]) -> list[str]:
    """Accuracy metrics first, then by name and K (``ndcg@10`` before ``ndcg@20``)."""
    rank = {m: i for i, m in enumerate(("ndcg", "hit_rate", "recall", "precision", "map", "mrr"))}

    def key(name: str) -> tuple[int, str, int]:
        base, _, k = name.partition("@")
        return (rank.get(base, len(rank)), base, int(k) if k.isdigit() else 0)

    return sorted(names, key=key)


def compare_runs(
    db: str | Path | None,
    runs: Sequence[str],
    *,
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
    correction: str = "holm",
    n_resamples: int = 2000,
    seed: int = 0,
    estimators: Sequence[str] | None = None,
    claim: float | None = None,
) -> RunComparison:
    """Compare replay runs (ids or unique names) in the store at ``db``; ``runs[0]`` is the
    reference. See the module docstring for what is computed.

    ``metrics`` defaults to every per-user metric all runs recorded; ``estimators`` (off-policy
    runs) to ``ips`` and ``snips``, plus ``dr`` when every run reported a DR estimate and
    stored its model predictions; ``claim`` (off-policy only) is a relative lift to test,
    e.g. 0.2 for +20%.
    """

    if len(runs) < 2:
        raise InputError("compare needs at least two runs: the reference first, then the others")
    if len(set(runs)) != len(runs):
        raise InputError("a run is listed twice; list each run once")
    if not 0 < confidence < 1:
        raise InputError(f"{param('confidence')} must be between 0 and 1, got {confidence}")
    if correction not in CORRECTIONS:
        raise InputError(
            f"{param('correction')}: " + unknown_choice("correction", correction, CORRECTIONS)
        )
    if n_resamples != 0 and n_resamples < 100:
        raise InputError(
            f"{param('n_resamples')} must be 0 (off) or at least 100 resamples, got {n_resamples}"
        )
    with open_store(db) as store:
        records = fetch_runs(store.con, list(runs))
        if len({r.run_id for r in records}) != len(records):
            raise InputError("two arguments name the same run; list each run once")
        check_comparable(records)
        offpolicy = records[0].kind == "offpolicy"
        if offpolicy and metrics:
            raise InputError(
                f"{param('metrics')} applies to ranking runs; off-policy runs compare estimators"
            )
        if not offpolicy and claim is not None:
            raise InputError(
                f"{param('claim')} applies to off-policy runs (a policy's estimated conversion "
                "rate); "
                "for ranking runs read the relative difference interval"
            )
        if not offpolicy and estimators:
            raise InputError(f"{param('estimators')} applies to off-policy runs")
        # what every comparison reports; each kind fills in its rows
        settings = RunComparison(
            kind="offpolicy" if offpolicy else "ranking",
            runs=tuple(records),
            metrics=(),
            confidence=confidence,
            correction=correction,
            n_resamples=n_resamples,
            seed=seed,
        )
        if offpolicy:
            return _compare_offpolicy(store.con, settings, estimators=estimators, claim=claim)
        return _compare_ranking(store.con, settings, metrics=metrics)


_Row = TypeVar("_Row", MetricComparison, OffPolicyComparison)


class _Versus(TypedDict):
    reference: str
    reference_run: str
    candidate: str
    candidate_run: str


def _versus(names: dict[str, str], reference: RunRecord, candidate: RunRecord) -> _Versus:
    """Which runs a comparison row compares, by id and by what tables call them."""
    return _Versus(
        reference=names[reference.run_id],
        reference_run=reference.run_id,
        candidate=names[candidate.run_id],
        candidate_run=candidate.run_id,
    )


def _adjusted(rows: list[_Row], correction: str) -> tuple[_Row, ...]:
    """``rows`` with their p-values adjusted together, as one family, by ``correction``."""

    p_adjusted = adjust([r.result.p_value for r in rows], correction)  # type: ignore[arg-type]
    return tuple(replace(row, p_adjusted=float(p)) for row, p in zip(rows, p_adjusted, strict=True))


def _compare_ranking(
    con: Any, settings: RunComparison, *, metrics: Sequence[str] | None
) -> RunComparison:

    records = settings.runs
    per_run = [set(run_metric_names(con, r.run_id)) for r in records]
    common = set.intersection(*per_run)
    if not common:
        raise StoreError(
            f"runs {', '.join(r.run_id for r in records)} share no per-user metric; "
            f"replay them with the same {param('ks')}"
        )
    if metrics:
        for name in metrics:
            lacking = [
                r.run_id for r, names in zip(records, per_run, strict=True) if name not in names
            ]
            if lacking and len(lacking) < len(records):
                raise InputError(
                    f"{param('metrics')} {name}: run(s) {', '.join(lacking)} have no such metric "
                    f"(the runs share {', '.join(_order_metrics(common))}); replay them with the "
                    f"same {param('ks')}"
                )
            if name not in common:
                raise InputError(f"{param('metrics')}: " + unknown_choice("metric", name, common))
        chosen = list(dict.fromkeys(metrics))
    else:
        chosen = _order_metrics(common)
    reference = settings.reference
    names = display_labels(records)
    rows: list[MetricComparison] = []
    notes: list[str] = []
    paired_users = 0
    run_ids = [r.run_id for r in records]
    for metric in chosen:
        paired = paired_user_metrics(con, run_ids, metric)
        n = int(paired.user_ids.size)
        if n < 2:
            raise StoreError(
                f"runs {', '.join(run_ids)} have {n} user(s) in common on {metric}; "
                "a paired comparison needs at least 2"
            )
        paired_users = n
        dropped = max(paired.users_per_run) - n
        for j, record in enumerate(records[1:], start=1):
            result = compare_paired(
                paired.values[:, 0],
                paired.values[:, j],
                confidence=settings.confidence,
                n_resamples=settings.n_resamples,
                seed=settings.seed,
            )
            rows.append(
                MetricComparison(
                    metric=metric,
                    **_versus(names, reference, record),
                    result=result,
                    p_adjusted=math.nan,  # set by _adjusted over the whole family
                    users_unpaired=paired.users_per_run[j] - n,
                )
            )
        if dropped:
            notes.append(
                f"{metric}: {dropped} user(s) scored by only some runs were left out of the pairing"
            )
    return replace(
        settings,
        metrics=tuple(chosen),
        rows=_adjusted(rows, settings.correction),
        paired_users=paired_users,
        notes=tuple(dict.fromkeys(notes)),
    )


def _compare_offpolicy(
    con: Any,
    settings: RunComparison,
    *,
    estimators: Sequence[str] | None,
    claim: float | None,
) -> RunComparison:
    import numpy as np

    records = settings.runs
    run_ids = [r.run_id for r in records]
    rounds = paired_rounds(con, run_ids)
    n = int(rounds.impression_ids.size)
    if n < 2:
        raise StoreError(
            f"runs {', '.join(run_ids)} share {n} logged round(s); an off-policy comparison "
            "needs the same logs (replay both policies on the same dataset and --since)"
        )
    if rounds.reward_mismatches:
        raise InputError(
            f"runs {', '.join(run_ids)} recorded different rewards on {rounds.reward_mismatches} "
            f"shared round(s): they were evaluated with different {param('reward')} columns or logs"
        )
    has_q = bool(np.all(np.isfinite(rounds.q_logged)) and np.all(np.isfinite(rounds.q_policy)))
    # DR by default only when every run asked for it (else its q columns may be placeholders)
    dr_everywhere = all("dr" in run_estimator_names(con, r.run_id) for r in records)
    allowed = ("ips", "snips", "dr")
    if estimators:
        for est in estimators:
            if est not in allowed:
                raise InputError(
                    f"{param('estimators')}: " + unknown_choice("estimator", est, allowed)
                )
            if est == "dr" and not has_q:
                raise InputError(
                    f"{param('estimators')} dr needs the reward model's predictions (q_logged, "
                    "q_policy) "
                    "for every round; these runs did not store them"
                )
        chosen = list(dict.fromkeys(estimators))
    else:
        chosen = ["ips", "snips"] + (["dr"] if has_q and dr_everywhere else [])
    notes = []
    lost = max(rounds.rounds_per_run) - n
    if lost:
        notes.append(f"{lost} logged round(s) scored by only some runs were left out")
    if rounds.unlogged_rounds:
        notes.append(
            f"{rounds.unlogged_rounds} round(s) are no longer in the logged impressions, so "
            "their user is unknown: each counts as its own unit in the clustered variance"
        )
    reference = settings.reference
    names = display_labels(records)
    rows: list[OffPolicyComparison] = []
    for est in chosen:
        for j, record in enumerate(records[1:], start=1):
            dr = est == "dr"
            result = paired_offpolicy_difference(
                reward=rounds.reward,
                weight_a=rounds.weight[:, 0],
                weight_b=rounds.weight[:, j],
                estimator=est,  # type: ignore[arg-type]
                q_logged_a=rounds.q_logged[:, 0] if dr else None,
                q_policy_a=rounds.q_policy[:, 0] if dr else None,
                q_logged_b=rounds.q_logged[:, j] if dr else None,
                q_policy_b=rounds.q_policy[:, j] if dr else None,
                clusters=rounds.cluster_ids,
                confidence=settings.confidence,
            )
            rows.append(
                OffPolicyComparison(
                    estimator=est,
                    **_versus(names, reference, record),
                    result=result,
                    p_adjusted=math.nan,  # set by _adjusted over the whole family
                    claim=None
                    if claim is None
                    else _claim(result, claim, settings.confidence, reference, record),
                )
            )
    return replace(
        settings,
        metrics=tuple(chosen),
        offpolicy=_adjusted(rows, settings.correction),
        paired_rounds=n,
        paired_units=int(np.unique(rounds.cluster_ids).size),
        notes=tuple(notes),
    )


def _claim(
    result: OffPolicyDifference,
    claim: float,
    confidence: float,
    reference: RunRecord,
    candidate: RunRecord,
) -> ClaimCheck | None:
    """The statistics issue's claim check, applied to the two policies' estimates: the
    candidate is the "treatment", the reference policy the "control", and their sampling
    covariance (the same logs) enters the Fieller test of ``value_b / value_a = 1 + claim``."""

    labels = display_labels([reference, candidate])
    comparison = compare_estimates(
        metric=f"{result.estimator} value",
        control=labels[reference.run_id],
        treatment=labels[candidate.run_id],
        treatment_value=result.value_b,
        control_value=result.value_a,
        treatment_var=result.variance_b,
        control_var=result.variance_a,
        cov=result.covariance,
        df=None,
        n_treatment=result.n_rounds,
        n_control=result.n_rounds,
        alpha=1 - confidence,
        claim=claim,
        method=f"paired {result.estimator.upper()} difference on the same logs",
        diff_ci_method="normal, influence-function variance",
        lift_ci_method="Fieller",
    )
    check = comparison.claim
    if check is not None and result.relative_ci_low > check.max_supported_lift:
        # the relative interval is cut at -100% for non-negative rewards (no policy earns a
        # negative click rate): the claim's bound, the same Fieller end, is cut with it
        check = replace(check, max_supported_lift=result.relative_ci_low)
    return check
