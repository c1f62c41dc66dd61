"""``replay``: fit (or load) a recommender on a split, evaluate it, store the run.

One call does, in order: validate every option; read the split (and, for off-policy runs, the
logged rounds) from the store, read-only; fit the model or load ``model_path``; rank the whole
catalogue for the evaluated users in chunks (peak memory ~ chunk x n_items, never
users x items); compute per-user metrics; run the off-policy estimators; and only then open the
store for writing and insert the run in one transaction. Any error before the commit leaves
the file unchanged. A store that another process has locked is refused (or, with ``wait``,
waited for) before any of that work.

Evaluated users: users with training interactions and at least one relevant test item. With
seen items filtered (the default), the relevant items are the test items the user had not
interacted with in training (the others can never be recommended); ``exclude_seen=False``
(``--keep-seen``) ranks every item and counts every test item as relevant.

Off-policy runs turn the model into a target policy over the whole catalogue, seen items
included (the logging policies it is compared with do not filter either); ``exclude_seen``
applies to the ranking metrics only.

Sampled metrics (``sampled=N``) rank each user's relevant items among N random catalogue
items instead of the whole catalogue. They are off by default and warned about: they do not
preserve the order of models (Krichene & Rendle 2020, "On sampled metrics for item
recommendation").
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from abkit_recommenders.train_lstm import require_torch, save_trained, train_lstm
from abkit_recommenders.train_seed import train_seed

from abkit import __version__
from abkit._util import TableDisplay, unknown_choice
from abkit.data.engines import SparkConnection, check_engine, open_source
from abkit.data.parquet import append_runs
from abkit.data.replay_sql import (
    delete_runs,
    event_time_range,
    impression_time_range,
    insert_run,
    load_features,
    load_impression_split,
    load_rounds,
    load_split,
    run_exists,
    runs_named,
    variants,
)
from abkit.data.store import check_writable, open_store, utcnow
from abkit.errors import AbkitWarning, InputError, StoreError, param
from abkit.plugins import (
    DEVICES,
    FIT_STEPS,
    Exposures,
    TrainingData,
    create_recommender,
    fingerprint_arrays,
    resolve_recommender_name,
    top_k_from_scores,
)
from abkit.replay.lstm_contract import ARCHS, SEED_DEFAULTS
from abkit.replay.lstm_contract import DEFAULTS as LSTM_DEFAULTS
from abkit.replay.metrics import CoverageCounter, parse_ks, ranking_metrics
from abkit.replay.offpolicy import (
    CI_METHODS,
    POLICIES,
    UNIT_RANGE,
    Estimate,
    PolicyRounds,
    degenerate_policy_warnings,
    estimate_policy_value,
    file_policy_probabilities,
    finite_json,
    parse_estimators,
    policy_probabilities,
)
from abkit.replay.policy_file import PolicyFile, read_policy_file
from abkit.replay.spark_rank import rank_users_spark
from abkit.replay.splits import (
    SplitSpec,
    few_users_warning,
    parse_split,
    resolve_cutoff,
    resolve_seed,
)

if TYPE_CHECKING:
    import numpy as np

    from abkit.data.replay_sql import ImpressionArrays, RoundArrays, SplitArrays
    from abkit.plugins import Recommender, TrainingData

__all__ = [
    "BeforeStore",
    "MetricValue",
    "ReplayResult",
    "TrainResult",
    "code_version",
    "load_training_data",
    "replay",
    "run_replay",
    "train",
]

Progress = Callable[[str, int | None], AbstractContextManager[Callable[[int], None]]]
#: ``replay(before_store=...)``: (result, evaluated users' ids, per-user metric values) -> None
BeforeStore = Callable[["ReplayResult", "np.ndarray", Mapping[str, "np.ndarray"]], None]
REWARDS: tuple[str, ...] = ("click", "conversion", "value")
#: each reward's range (the store types click and conversion 0/1; value is any revenue)
REWARD_RANGES: dict[str, tuple[float, float]] = {
    "click": UNIT_RANGE,
    "conversion": UNIT_RANGE,
    "value": (-math.inf, math.inf),
}
CHUNK_CELLS = 1 << 23  # users x items per scoring chunk (32 MB of float32 scores)
POLICY_FILE_MODEL = "policy-file"  # the model name of a run that evaluates a --policy-file


@dataclass(frozen=True, kw_only=True)
class MetricValue:
    """A metric's mean over the evaluated users (coverage: its value over all lists)."""

    name: str  # "ndcg@10"
    value: float
    users: int


@dataclass(frozen=True, kw_only=True)
class ReplayResult(TableDisplay):
    """A stored run as ``replay`` returns it."""

    run_id: str
    name: str | None
    dataset: str
    model: str
    kind: str
    params_json: str
    split: str
    ks: tuple[int, ...]
    users: int
    cold_users: int
    n_items: int
    train_interactions: int
    rounds: int
    fingerprint: str
    code_version: str
    created_at: datetime
    device: str
    policy: str | None
    metrics: tuple[MetricValue, ...]
    estimates: tuple[Estimate, ...]
    warnings: tuple[str, ...]

    def metric(self, name: str) -> float:
        """The value of ``name`` (e.g. ``"ndcg@10"``); KeyError when not computed."""
        for m in self.metrics:
            if m.name == name:
                return m.value
        raise KeyError(name)

    def estimate(self, estimator: str) -> Estimate:
        for e in self.estimates:
            if e.estimator == estimator:
                return e
        raise KeyError(estimator)

    def table_rows(self) -> list[dict[str, Any]]:
        """One row per metric (its mean over users), then one per off-policy estimate with
        its interval and ESS (``to_pandas()``, the notebook display under the run's chart)."""
        rows: list[dict[str, Any]] = [
            {"run": self.name or self.run_id, "metric": m.name, "value": m.value, "users": m.users}
            for m in self.metrics
        ]
        rows += [
            {
                "run": self.name or self.run_id, "metric": e.estimator, "value": e.value,
                "ci_low": e.ci_low, "ci_high": e.ci_high, "ess": e.ess, "refused": e.refused,
            }
            for e in self.estimates
        ]  # fmt: skip
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "dataset": self.dataset,
            "model": self.model,
            "kind": self.kind,
            "params": json.loads(self.params_json),
            "split": self.split,
            "k": list(self.ks),
            "users": self.users,
            "cold_users": self.cold_users,
            "n_items": self.n_items,
            "train_interactions": self.train_interactions,
            "rounds": self.rounds,
            "fingerprint": self.fingerprint,
            "code_version": self.code_version,
            "created_at": self.created_at.isoformat(),
            "device": self.device,
            "policy": self.policy,
            "metrics": {m.name: m.value for m in self.metrics},
            "estimates": {e.estimator: e.to_dict() for e in self.estimates},
            "warnings": list(self.warnings),
        }


def code_version() -> str:
    """``abkit X.Y.Z``, plus the git commit when abkit runs from a checkout."""

    version = f"abkit {__version__}"
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            sha = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            sha = ""
        if sha:
            version += f" (git {sha})"
    return version


@contextmanager
def no_progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A :data:`Progress` that shows nothing (library calls without a progress bar)."""

    def advance(n: int = 1) -> None:
        return None

    yield advance


def _validate(
    *,
    ks: Sequence[int] | str,
    split: str | SplitSpec,
    estimators: Sequence[str] | str,
    policy: str,
    reward: str,
    sampled: int | None,
    device: str,
    ci: str = "normal",
) -> tuple[tuple[int, ...], SplitSpec, tuple[str, ...]]:

    k_values = parse_ks(ks)
    spec = split if isinstance(split, SplitSpec) else parse_split(split)
    names = (
        parse_estimators(estimators if isinstance(estimators, str) else tuple(estimators))
        if estimators
        else ()
    )
    if policy not in POLICIES:
        raise InputError(f"{param('policy')}: " + unknown_choice("policy", policy, POLICIES))
    if reward not in REWARDS:
        raise InputError(f"{param('reward')}: " + unknown_choice("reward", reward, REWARDS))
    if sampled is not None and sampled < 1:
        raise InputError(f"{param('sampled')} must be a positive number of items, got {sampled}")
    if device not in DEVICES:
        raise InputError(f"{param('device')}: " + unknown_choice("device", device, DEVICES))
    if ci not in CI_METHODS:  # checked even without --estimator: never stored as a run's param
        raise InputError(f"{param('ci')}: " + unknown_choice("interval method", ci, CI_METHODS))
    return k_values, spec, names


def replay(
    db: str | Path | None = None,
    *,
    model: str | None = None,
    dataset: str | None = None,
    split: str | SplitSpec = "temporal",
    ks: Sequence[int] | str = (10,),
    params: Mapping[str, Any] | None = None,
    model_path: str | Path | None = None,
    name: str | None = None,
    estimators: Sequence[str] | str = (),
    policy: str = "topk",
    temperature: float = 1.0,
    device: str = "auto",
    exclude_seen: bool = True,
    sampled: int | None = None,
    variant: str | None = None,
    reward: str = "click",
    alpha: float = 0.05,
    ci: str = "normal",
    n_boot: int = 1000,
    min_ess: float = 30.0,
    seed: int = 0,
    map_denominator: str = "min",
    chunk_users: int | None = None,
    progress: Progress | None = None,
    write: bool = True,
    replace: bool = False,
    wait: float = 0.0,
    before_store: BeforeStore | None = None,
    policy_file: str | Path | None = None,
    engine: str = "duckdb",
    source: str | None = None,
    spark_master: str | None = None,
    runs_out: str | Path | None = None,
) -> ReplayResult:
    """Replay ``model`` on a split of the store at ``db`` and store the run.

    ``engine="spark"`` reads the split from ``source`` in Spark (a folder written by ``abkit
    export``, or ``catalog:DB``), fits (or loads) the model on the driver and scores the
    users in Spark partitions (:mod:`abkit.replay.spark_rank`); the run is stored in ``db``
    as with DuckDB. Off-policy estimators and sampled metrics are refused there.
    ``runs_out`` writes the run as Parquet files into that folder (e.g. the export folder
    the run was read from: :func:`abkit.data.parquet.append_runs`) instead of into ``db``.

    Ranking metrics are computed at every K of ``ks`` for the evaluated users; when
    ``estimators`` are given (``replay``, ``ips``, ``snips``, ``dr``) the run is an off-policy
    run that also estimates the model's click rate on the logged impressions (of ``variant``,
    or all), with the model turned into a per-slot ``policy`` (see
    :mod:`abkit.replay.offpolicy`). ``params`` go to the model's constructor; ``model_path``
    loads a fitted model instead of fitting. ``write=False`` evaluates without storing.
    Every bad input raises a one-line :class:`~abkit.errors.AbkitError` and writes nothing.

    Run names are unique: a ``name`` that another stored run already has is refused before
    any work is done, unless ``replace`` (``--replace``), which deletes the run(s) of that
    name, in any dataset, in the transaction that stores the new one. A name equal to
    another run's id is always refused (the id would win every lookup).

    A store locked by another process is refused before the model is fitted; ``wait``
    seconds retries the lock (then, and again to store the run) instead of failing at once.

    ``before_store(result, user_ids, per_user)``, when given, is called after the evaluation
    and before anything is written (also with ``write=False``): the evaluated users' ids
    (strings, in evaluation order) and each per-user metric's values in that order. A check
    that needs the run's outcome (its data fingerprint, its users) raises an
    :class:`~abkit.errors.AbkitError` there, and the store stays as it was.

    Impression logs without interaction events (the Open Bandit Dataset): a model that needs
    training learns from the impressions before the split's cut-off (a temporal split of the
    impressions' time range: ``temporal:0.5`` trains on the first half and evaluates on the
    second; see :mod:`abkit.plugins` for what the model sees) and is evaluated off-policy on
    the impressions at or after it. A model that needs no training (``random``) or a
    ``policy_file`` is evaluated on every impression under the plain ``temporal`` split, and on
    the later part under any other temporal split (so it can be compared with a trained
    model on the same rounds).

    ``policy_file`` (instead of ``model``) evaluates an outside policy given by its action
    probabilities (:mod:`abkit.replay.policy_file`) off-policy; ``estimators`` default to
    replay, ips, snips and dr. The run's model is ``policy-file``.
    """

    import numpy as np

    if (model is None) == (policy_file is None):
        raise InputError(f"give either {param('model')} or {param('policy_file')}")
    if policy_file is not None and not estimators:
        estimators = ("replay", "ips", "snips", "dr")
    k_values, spec, estimator_names = _validate(
        ks=ks,
        split=split,
        estimators=estimators,
        policy=policy,
        reward=reward,
        sampled=sampled,
        device=device,
        ci=ci,
    )
    model_params = dict(params or {})
    recommender: Recommender | None = None
    if model is not None:
        model = resolve_recommender_name(model)  # `--model ALS` is als, stored as als
        recommender = create_recommender(model, model_params)
        if "device" in recommender.params() and "device" not in model_params:
            recommender = create_recommender(model, {**model_params, "device": device})
    elif model_params or model_path is not None:
        raise InputError(
            f"{param('policy_file')} evaluates the file's probabilities; it takes no "
            f"{param('params')} or {param('model_path')}"
        )
    model_name = model if model is not None else POLICY_FILE_MODEL
    learns = recommender is not None and getattr(recommender, "needs_training", True)
    path = Path(model_path) if model_path is not None else None
    if path is not None and not path.is_file():
        raise InputError(f"{param('model_path')} {path}: no such file")
    offpolicy = bool(estimator_names)
    progress = progress or no_progress
    check_engine(engine, source)
    if engine == "spark" and (offpolicy or sampled is not None):
        raise InputError(
            f"{param('engine')} spark ranks users with full-catalogue metrics; off-policy "
            f"{param('estimators')} and {param('sampled')} metrics run on the DuckDB engine only"
        )
    if write and runs_out is None:
        check_writable(db, wait=wait)  # fail before the work, not after it
        if engine == "spark" and name is not None:
            with open_store(db, write=True, wait=wait) as out:
                _check_name(out, name, replace=replace)

    spark: Any = None
    with open_source(db, engine=engine, source=source, spark_master=spark_master) as store:
        dataset_name = store.resolve_dataset(dataset)
        if engine == "spark":
            spark = cast(SparkConnection, store.con).spark
        elif write and name is not None:
            _check_name(store, name, replace=replace)
        first, last, _n_events = event_time_range(store.con, dataset_name)
        spec = resolve_seed(spec, seed)
        if offpolicy and variant is not None:
            known = variants(store.con, dataset_name)
            if variant not in known:
                raise InputError(
                    f"{param('variant')}: " + unknown_choice("variant", variant, known)
                )
        # impression logs without events: split the impressions by time (docstring)
        from_impressions = first is None and offpolicy and (learns or str(spec) != "temporal")
        exposures: ImpressionArrays | None = None
        if from_impressions:
            spec, arrays, exposures = _impression_split(
                store.con, dataset_name, spec, variant=variant, reward=reward
            )
        elif spec.kind == "temporal" and first is not None and last is not None:
            spec = resolve_cutoff(spec, first, last)
        elif spec.kind == "temporal" and not offpolicy:
            raise InputError(
                f"dataset '{dataset_name}' has no interaction events (with an item) to split"
            )
        cutoff: datetime | None = spec.cutoff
        if spec.kind == "temporal" and cutoff is None:
            # off-policy on logs without events (the OBD): nothing to train on, every round
            cutoff = datetime(1, 1, 1)
        if not from_impressions:
            arrays = load_split(
                store.con, dataset_name, kind=spec.kind, cutoff=cutoff, seed=spec.seed
            )
        rounds = None
        context = None
        if offpolicy:
            since = spec.cutoff if spec.kind == "temporal" else None
            rounds = load_rounds(
                store.con,
                dataset_name,
                kind=spec.kind,
                cutoff=cutoff,
                since=since,
                variant=variant,
                reward=reward,
                seed=spec.seed,
                train_source="impressions" if from_impressions else "events",
            )
            if rounds.impression_id.size == 0:
                where = f" at or after {spec.cutoff}" if since is not None else ""
                raise InputError(
                    f"dataset '{dataset_name}' has no logged impressions{where}"
                    + (f" of variant '{variant}'" if variant else "")
                    + " to estimate from"
                )
            if from_impressions:
                user_ids = np.concatenate([arrays.user_ids, rounds.extra_user_ids])
                context = load_features(store.con, dataset_name, user_ids)
    split_text = str(spec)
    data = _training_data(arrays, rounds, exposures=exposures, context=context)
    if (
        recommender is not None
        and getattr(recommender, "learns_from", None) == "impressions"
        and data.exposures is None
    ):
        raise InputError(
            f"model '{model}' learns from logged impressions, and dataset "
            f"'{dataset_name}' has interaction events: use a dataset of impression logs "
            "(e.g. the Open Bandit Dataset) with --estimator"
        )
    if data.n_interactions == 0 and learns:
        raise InputError(
            f"the training split of dataset '{dataset_name}' ({split_text}) is empty: "
            "no interaction to fit the model on"
        )
    if max(k_values) > data.n_items:
        raise InputError(
            f"{param('ks')} {max(k_values)} is larger than the catalogue ({data.n_items} items)"
        )
    outside: PolicyFile | None = None
    if policy_file is not None and rounds is not None:
        outside = read_policy_file(
            policy_file,
            item_ids=data.item_ids,
            n_rounds=int(np.unique(rounds.impression_id).size),
            n_slots=int(rounds.position.max()),
        )
    eval_users, rel_indptr, rel_items = _relevance(arrays, data, exclude_seen=exclude_seen)
    if recommender is None:  # a policy file ranks nothing
        eval_users, rel_indptr = eval_users[:0], rel_indptr[:1]
    if not offpolicy and eval_users.size == 0:
        raise InputError(
            f"no user of dataset '{dataset_name}' has both training and new test interactions "
            f"under split {split_text}; try another {param('split')}"
        )

    caught: list[str] = []
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        metrics: tuple[MetricValue, ...] = ()
        per_user: dict[str, np.ndarray] = {}
        if recommender is not None and path is not None:
            recommender.load(path, data)
        elif recommender is not None:
            fit_with_progress(recommender, data, progress, f"fitting {model}")
        if recommender is not None and spark is None:
            metrics, per_user = rank_users(
                recommender,
                data,
                eval_users,
                rel_indptr,
                rel_items,
                ks=k_values,
                exclude_seen=exclude_seen,
                sampled=sampled,
                seed=seed,
                map_denominator=map_denominator,
                chunk_users=chunk_users,
                progress=progress,
            )
        elif recommender is not None:
            per_user, coverage = rank_users_spark(
                spark,
                model_name,
                recommender,
                data,
                eval_users,
                rel_indptr,
                rel_items,
                ks=k_values,
                exclude_seen=exclude_seen,
                map_denominator=map_denominator,
                chunk=chunk_size(data.n_items, chunk_users),
            )
            metrics = summarise_metrics(per_user, coverage, int(eval_users.size))
        estimates: tuple[Estimate, ...] = ()
        round_columns = None
        if rounds is not None:
            target = outside if outside is not None else recommender
            assert target is not None  # a model or a policy file, checked on entry
            estimates, round_columns = _offpolicy(
                target,
                data,
                rounds,
                estimator_names,
                policy=policy,
                temperature=temperature,
                alpha=alpha,
                ci=ci,
                n_boot=n_boot,
                min_ess=min_ess,
                seed=seed,
                progress=progress,
                reward_range=REWARD_RANGES[reward],
            )
    for record in records:
        text = str(record.message)
        if text not in caught:
            caught.append(text)
    few = few_users_warning(int(eval_users.size), split_text) if eval_users.size else None
    if few is not None:
        caught.append(few)
    if sampled is not None:
        caught.append(
            f"sampled metrics (each user's relevant items ranked among {sampled} random items) "
            "do not preserve the order of models; use full ranking to compare models"
        )

    created = utcnow()
    model_params_used = (
        recommender.params()
        if recommender is not None
        else {}
        if outside is None
        else {"policy_file": str(outside.path), "layout": outside.layout, "sha256": outside.sha256}
    )
    params_json = json.dumps(
        {
            **model_params_used,
            **({"train_on": "impressions"} if from_impressions else {}),
            "exclude_seen": exclude_seen,
            **({"sampled": sampled} if sampled is not None else {}),
            **({"model_path": str(path)} if path is not None else {}),
            **(
                {
                    "policy": policy,
                    "temperature": temperature,
                    "reward": reward,
                    "variant": variant,
                    "ci": ci,
                    "alpha": alpha,
                }
                if offpolicy
                else {}
            ),
        },
        sort_keys=True,
    )
    fingerprint = _run_fingerprint(
        data, eval_users, rel_indptr, rel_items, rounds, split_text, exclude_seen, sampled
    )
    digest = hashlib.blake2b(
        f"{model_name}{params_json}{fingerprint}{created.isoformat()}".encode(), digest_size=4
    ).hexdigest()
    run_id = f"{model_name}-{digest}"
    summary = {
        "metrics": {m.name: m.value for m in metrics},
        "estimates": {e.estimator: e.to_dict() for e in estimates},
    }
    result = ReplayResult(
        run_id=run_id,
        name=name,
        dataset=dataset_name,
        model=model_name,
        kind="offpolicy" if offpolicy else "ranking",
        params_json=params_json,
        split=split_text,
        ks=k_values,
        users=int(eval_users.size),
        cold_users=arrays.cold_test_users,
        n_items=data.n_items,
        train_interactions=data.n_interactions,
        rounds=0 if rounds is None else int(rounds.impression_id.size),
        fingerprint=fingerprint,
        code_version=code_version(),
        created_at=created,
        device=str(getattr(recommender, "used_device", "cpu")),
        policy=("file" if outside is not None else policy) if offpolicy else None,
        metrics=metrics,
        estimates=estimates,
        warnings=tuple(caught),
    )
    if before_store is not None:
        before_store(result, data.user_ids[eval_users], per_user)
    if write and runs_out is not None:
        with (
            progress("writing the run", None),
            tempfile.TemporaryDirectory(prefix="abkit-run-") as tmp,
        ):
            staged = Path(tmp) / "run.duckdb"
            _store(staged, result, data, eval_users, per_user, round_columns, summary)
            append_runs(staged, runs_out, [result.run_id])
    elif write:
        with progress("writing the run", None):
            _store(
                db,
                result,
                data,
                eval_users,
                per_user,
                round_columns,
                summary,
                replace=replace,
                wait=wait,
            )
    return result


def fit_with_progress(
    recommender: Recommender, data: TrainingData, progress: Progress, description: str
) -> None:
    """``recommender.fit(data)`` under a progress line: step by step for a recommender that
    reports its steps (:data:`abkit.plugins.FIT_STEPS`: ALS's iterations), else a phase of
    unknown length."""
    steps = getattr(recommender, FIT_STEPS, None)
    with progress(description, steps) as advance:
        if steps is None:
            recommender.fit(data)
        else:
            recommender.fit(data, on_step=advance)  # type: ignore[call-arg]


def _check_name(store: Any, name: str, *, replace: bool) -> list[str]:
    """The ids of the runs named ``name`` (which ``replace`` deletes); raises
    :class:`StoreError` when the name is taken and not ``replace``, or is another run's id."""

    named, id_clash = runs_named(store.con, name)
    if id_clash:
        raise StoreError(
            f"{store.path}: {param('name')} '{name}' is the id of another run; choose another "
            f"{param('name')}"
        )
    if named and not replace:
        ids = ", ".join(named)
        raise StoreError(
            f"{store.path}: a run named '{name}' already exists ({ids}); pass --replace to "
            f"replace it, choose another {param('name')}, or delete it with `abkit runs delete`"
        )
    return named


def _impression_split(
    con: Any, dataset: str, spec: SplitSpec, *, variant: str | None, reward: str
) -> tuple[SplitSpec, SplitArrays, ImpressionArrays]:
    """The temporal split of an impression log without events (see :func:`replay`)."""
    if spec.kind != "temporal":
        raise InputError(
            f"{param('split')} {spec}: dataset '{dataset}' has impression logs and no events; "
            "they are split by time: temporal, temporal:SHARE or temporal:DATE"
        )
    first, last, count = impression_time_range(con, dataset, variant)
    if first is None or last is None or count == 0:
        raise InputError(
            f"dataset '{dataset}' has no logged impressions"
            + (f" of variant '{variant}'" if variant else "")
        )
    spec = resolve_cutoff(spec, first, last)
    assert spec.cutoff is not None  # resolve_cutoff fixes it
    arrays, exposures = load_impression_split(
        con, dataset, cutoff=spec.cutoff, variant=variant, reward=reward
    )
    return spec, arrays, exposures


def _training_data(
    arrays: SplitArrays,
    rounds: RoundArrays | None,
    *,
    exposures: ImpressionArrays | None = None,
    context: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> TrainingData:
    import numpy as np
    import scipy.sparse as sp

    n_train = int(arrays.user_ids.size)
    user_ids = arrays.user_ids
    if rounds is not None and rounds.extra_user_ids.size:
        user_ids = np.concatenate([user_ids, rounds.extra_user_ids])
    context_matrix = context_names = None
    if context is not None:
        context_names, rows, cols, values = context
        context_matrix = sp.csr_matrix(
            (values, (rows, cols)), shape=(user_ids.size, context_names.size)
        )
    return TrainingData.from_arrays(
        user_idx=arrays.train_user_idx,
        item_idx=arrays.train_item_idx,
        user_ids=user_ids,
        item_ids=arrays.item_ids,
        n_train_users=n_train,
        fingerprint=fingerprint_arrays(
            arrays.train_user_idx, arrays.train_item_idx, arrays.user_ids, arrays.item_ids
        ),
        exposures=None
        if exposures is None
        else Exposures(
            user_idx=exposures.user_idx,
            item_idx=exposures.item_idx,
            position=exposures.position,
            reward=exposures.reward,
            propensity=exposures.propensity,
        ),
        context=context_matrix,
        context_names=context_names,
    )


def _relevance(
    arrays: SplitArrays, data: TrainingData, *, exclude_seen: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(evaluated users, CSR indptr, relevant items) from the test pairs."""
    import numpy as np

    users, items = arrays.test_user_idx, arrays.test_item_idx
    if exclude_seen and users.size:
        keys = users * data.n_items + items
        m = data.matrix
        row_of = np.repeat(np.arange(data.n_users, dtype=np.int64), np.diff(m.indptr))
        seen_keys = np.sort(row_of * data.n_items + m.indices.astype(np.int64))
        if seen_keys.size:
            pos = np.clip(np.searchsorted(seen_keys, keys), 0, seen_keys.size - 1)
            fresh = seen_keys[pos] != keys
            users, items = users[fresh], items[fresh]
    eval_users, counts = np.unique(users, return_counts=True)
    indptr = np.zeros(eval_users.size + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return eval_users, indptr, items  # pairs are sorted by (user, item) already


def rank_users(
    model: Recommender,
    data: TrainingData,
    users: np.ndarray,
    rel_indptr: np.ndarray,
    rel_items: np.ndarray,
    *,
    ks: tuple[int, ...],
    exclude_seen: bool,
    sampled: int | None,
    seed: int,
    map_denominator: str,
    chunk_users: int | None,
    progress: Progress,
) -> tuple[tuple[MetricValue, ...], dict[str, np.ndarray]]:
    """Rank the whole catalogue (or ``sampled`` items) for ``users`` chunk by chunk and grade
    the top ``max(ks)`` against each user's relevant items (CSR ``rel_indptr``/``rel_items``):
    the run's metrics and the per-user values of every metric."""
    import numpy as np

    if users.size == 0:
        return (), {}
    k_max = max(ks)
    chunk = chunk_size(data.n_items, chunk_users)
    coverage = CoverageCounter(ks, data.n_items)
    parts: dict[str, list[np.ndarray]] = {}
    counts = data.item_user_counts()
    rng = np.random.default_rng(seed)
    with progress("ranking", int(users.size)) as advance:
        for start in range(0, users.size, chunk):
            stop = min(start + chunk, users.size)
            batch = users[start:stop]
            indptr = rel_indptr[start : stop + 1] - rel_indptr[start]
            rel = rel_items[rel_indptr[start] : rel_indptr[stop]]
            if sampled is None:
                top, _ = model.recommend(data, batch, k_max, exclude_seen=exclude_seen)
            else:
                top = _sampled_top(
                    model, data, batch, indptr, rel, k_max, sampled, rng, exclude_seen
                )
            coverage.update(top)
            values = ranking_metrics(
                top,
                indptr,
                rel,
                ks=ks,
                n_items=data.n_items,
                item_user_counts=counts,
                n_train_users=data.n_train_users,
                map_denominator=map_denominator,  # type: ignore[arg-type]
            )
            for key, value in values.items():
                parts.setdefault(key, []).append(value)
            advance(stop - start)
    per_user = {key: np.concatenate(chunks) for key, chunks in parts.items()}
    return summarise_metrics(per_user, coverage, int(users.size)), per_user


def chunk_size(n_items: int, chunk_users: int | None) -> int:
    """Users per scoring chunk (both engines score the same chunks)."""
    return chunk_users or max(1, min(4096, CHUNK_CELLS // max(n_items, 1)))


def summarise_metrics(
    per_user: dict[str, np.ndarray], coverage: CoverageCounter, n_users: int
) -> tuple[MetricValue, ...]:
    """The run's metrics: the mean of each per-user metric and the coverage, in the order
    K, then hit_rate, precision, recall, ndcg, mrr, map, coverage, novelty, popularity_bias."""
    means = [
        MetricValue(name=k, value=float(v.mean()), users=int(v.size)) for k, v in per_user.items()
    ]
    means += [MetricValue(name=k, value=v, users=n_users) for k, v in coverage.values().items()]
    order = {
        name: i
        for i, name in enumerate(
            (
                "hit_rate",
                "precision",
                "recall",
                "ndcg",
                "mrr",
                "map",
                "coverage",
                "novelty",
                "popularity_bias",
            )
        )
    }
    means.sort(key=lambda m: (int(m.name.split("@")[1]), order[m.name.split("@")[0]]))
    return tuple(means)


def _sampled_top(
    model: Recommender,
    data: TrainingData,
    batch: np.ndarray,
    indptr: np.ndarray,
    rel: np.ndarray,
    k: int,
    sampled: int,
    rng: np.random.Generator,
    exclude_seen: bool,
) -> np.ndarray:
    """Top-k within {relevant items} + ``sampled`` random items per user."""
    import numpy as np

    scores = np.asarray(model.score(data, batch), dtype=np.float32)
    keep = np.zeros(scores.shape, dtype=bool)
    negatives = rng.integers(0, data.n_items, size=(batch.size, sampled))
    keep[np.arange(batch.size)[:, None], negatives] = True
    keep[np.repeat(np.arange(batch.size), np.diff(indptr)), rel] = True
    scores[~keep] = -np.inf
    top, _ = top_k_from_scores(scores, k, exclude=data.seen_rows(batch) if exclude_seen else None)
    return top


def _dr_folds(rounds: RoundArrays) -> np.ndarray:
    """The two cross-fitting folds of DR's reward model: even / odd impression id, unless that
    leaves a slot with rounds in one fold only (slates of an even number of slots numbered in
    order make the id's parity the slot's), where the other fold's table would know nothing of
    the slot and its reward model be 0 everywhere (DR silently equal to IPS). Then the folds
    split the clusters (users, or slates) by a fixed hash of their index instead."""
    import numpy as np

    fold = (rounds.impression_id % 2).astype(np.int64)
    position = np.asarray(rounds.position, dtype=np.int64)
    both = np.zeros((int(position.max(initial=0)) + 1, 2), dtype=bool)
    both[position, fold] = True
    used = both.any(axis=1)
    if bool(both[used].all()):
        return fold
    mixed = np.asarray(rounds.cluster_idx, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return (mixed >> np.uint64(63)).astype(np.int64)


def _offpolicy(
    model: Recommender | PolicyFile,
    data: TrainingData,
    rounds: RoundArrays,
    estimator_names: tuple[str, ...],
    *,
    policy: str,
    temperature: float,
    alpha: float,
    ci: str,
    n_boot: int,
    min_ess: float,
    seed: int,
    progress: Progress,
    reward_range: tuple[float, float],
) -> tuple[tuple[Estimate, ...], dict[str, np.ndarray]]:
    import numpy as np

    fold = _dr_folds(rounds)
    if isinstance(model, PolicyFile):
        evaluated = file_policy_probabilities(
            model,
            rounds=np.unique(rounds.impression_id, return_inverse=True)[1].astype(np.int64),
            item_idx=rounds.item_idx,
            position=rounds.position,
            reward=rounds.reward,
            fold=fold,
            n_items=data.n_items,
        )
    else:
        with progress("target policy", int(np.unique(rounds.user_idx).size)) as advance:
            evaluated = policy_probabilities(
                model,
                data,
                user_idx=rounds.user_idx,
                item_idx=rounds.item_idx,
                position=rounds.position,
                reward=rounds.reward,
                fold=fold,
                policy=policy,  # type: ignore[arg-type]
                temperature=temperature,
                exclude_seen=False,
                progress=advance,
            )
        _warn_if_degenerate(model, data, rounds, evaluated, policy)
    rng = np.random.default_rng(seed)
    estimates = tuple(
        estimate_policy_value(
            rounds.reward,
            rounds.propensity,
            evaluated.target_probs,
            estimator=name,
            q_logged=evaluated.q_logged,
            q_policy=evaluated.q_policy,
            alpha=alpha,
            ci=ci,  # type: ignore[arg-type]
            n_boot=n_boot,
            rng=rng,
            min_ess=min_ess,
            clusters=rounds.cluster_idx,
            reward_range=reward_range,
        )
        for name in estimator_names
    )
    columns = {
        "impression_id": rounds.impression_id,
        "weight": evaluated.target_probs / rounds.propensity,
        "reward": rounds.reward,
        "q_logged": evaluated.q_logged,
        "q_policy": evaluated.q_policy,
    }
    return estimates, columns


def _warn_if_degenerate(
    model: Recommender,
    data: TrainingData,
    rounds: RoundArrays,
    evaluated: PolicyRounds,
    policy: str,
) -> None:
    """Warn (:class:`AbkitWarning`, one line each) with :func:`degenerate_policy_warnings` of a
    model's policy: none for ``random`` (the uniform
    reference by design); the constant and cold checks only for models that personalise
    (``personalised``, True unless the class says otherwise: ``popularity`` and ``ctr`` rank
    every user alike by design); the cold check only for models of the users' interactions
    (a model of impressions scores the round's context, not a history)."""
    import numpy as np

    if getattr(model, "name", None) == "random":
        return
    personalised = bool(getattr(model, "personalised", True))
    users = np.unique(rounds.user_idx)
    cold = None
    if personalised and getattr(model, "learns_from", "interactions") != "impressions":
        cold = int((np.diff(data.matrix.indptr)[users] == 0).sum())
    for message in degenerate_policy_warnings(
        evaluated.target_probs / rounds.propensity,
        n_users=int(users.size),
        varies=evaluated.varies,  # None for a model that is not personalised
        cold_users=cold,
        stochastic=policy == "stochastic",
        temperature_hint=getattr(model, "probabilities", None) is None,
    ):
        warnings.warn(message, AbkitWarning, stacklevel=3)


def _run_fingerprint(
    data: TrainingData,
    users: np.ndarray,
    rel_indptr: np.ndarray,
    rel_items: np.ndarray,
    rounds: RoundArrays | None,
    split_text: str,
    exclude_seen: bool,
    sampled: int | None,
) -> str:
    """Hash of what the run was evaluated on (not of the model): see :mod:`abkit.replay.runs`."""
    import numpy as np

    digest = hashlib.blake2b(digest_size=16)
    digest.update(data.fingerprint.encode())
    digest.update(f"{split_text}|seen={not exclude_seen}|sampled={sampled}".encode())
    for array in (users, rel_indptr, rel_items):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    if rounds is not None:
        for array in (rounds.impression_id, rounds.item_idx, rounds.position):
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(rounds.propensity).tobytes())
        digest.update(np.ascontiguousarray(rounds.reward).tobytes())
    return digest.hexdigest()


def _store(
    db: str | Path | None,
    result: ReplayResult,
    data: TrainingData,
    users: np.ndarray,
    per_user: dict[str, np.ndarray],
    round_columns: dict[str, np.ndarray] | None,
    summary: dict[str, Any],
    *,
    replace: bool = False,
    wait: float = 0.0,
) -> None:

    run = {
        "run_id": result.run_id,
        "name": result.name,
        "dataset": result.dataset,
        "model": result.model,
        "kind": result.kind,
        "params": result.params_json,
        "split": result.split,
        "ks": list(result.ks),
        "fingerprint": result.fingerprint,
        "code_version": result.code_version,
        "created_at": result.created_at,
        "users": result.users,
        "summary": json.dumps(finite_json(summary), allow_nan=False),
    }
    estimates = [
        {
            "estimator": e.estimator,
            "value": e.value,
            "ci_low": e.ci_low,
            "ci_high": e.ci_high,
            "ess": e.ess,
            "n": e.n,
            "diagnostics": e.diagnostics_json(),
        }
        for e in result.estimates
    ]
    with open_store(db, write=True, wait=wait) as store:
        if run_exists(store.con, result.run_id):
            raise StoreError(f"{store.path}: run {result.run_id} already exists")
        with store.transaction() as con:
            if result.name is not None:
                # checked again under the write lock: the same name may have been stored
                # while this run was computed
                delete_runs(con, _check_name(store, result.name, replace=replace))
            insert_run(
                con,
                run=run,
                user_ids=data.user_ids[users],
                user_metrics=per_user,
                estimates=estimates,
                rounds=round_columns,
            )


#: The public name of :func:`replay` in ``abkit`` (``abkit.replay`` is this package).
run_replay = replay


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What ``abkit train lstm`` wrote and what it learned from."""

    model: str
    arch: str
    path: str
    sidecar: str
    dataset: str
    split: str
    fingerprint: str
    n_items: int
    train_interactions: int
    examples: int
    epochs: int
    final_loss: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "arch": self.arch,
            "path": self.path,
            "sidecar": self.sidecar,
            "dataset": self.dataset,
            "split": self.split,
            "fingerprint": self.fingerprint,
            "n_items": self.n_items,
            "train_interactions": self.train_interactions,
            "examples": self.examples,
            "epochs": self.epochs,
            "final_loss": self.final_loss,
        }


def load_training_data(
    db: str | Path | None,
    *,
    dataset: str | None = None,
    split: str | SplitSpec = "temporal",
    seed: int = 0,
) -> tuple[TrainingData, str, str]:
    """(training data, resolved split string, dataset) exactly as :func:`replay` builds them
    for a ranking run, so a model trained on it matches the replay's fingerprint (``seed``
    breaks leave-last-out ties, as the replay's does)."""
    held_out = load_held_out(db, dataset=dataset, split=split, seed=seed)
    return held_out.data, held_out.split, held_out.dataset


@dataclass(frozen=True, kw_only=True, eq=False)
class HeldOut:
    """A ranking run's inputs: the training data and, per evaluated user (index into
    ``data``), the relevant test items ``items[indptr[u]:indptr[u + 1]]`` (new items of the
    test period, seen items excluded) - what :func:`replay` grades."""

    data: TrainingData
    users: np.ndarray
    indptr: np.ndarray
    items: np.ndarray
    split: str
    dataset: str


def load_held_out(
    db: str | Path | None,
    *,
    dataset: str | None = None,
    split: str | SplitSpec = "temporal",
    seed: int = 0,
) -> HeldOut:
    """The training data and held-out relevant items exactly as :func:`replay` builds them
    for a ranking run that excludes seen items."""

    spec = resolve_seed(split if isinstance(split, SplitSpec) else parse_split(split), seed)
    with open_store(db) as store:
        name = store.resolve_dataset(dataset)
        first, last, _ = event_time_range(store.con, name)
        if first is None or last is None:
            raise InputError(f"dataset '{name}' has no interaction events (with an item) to split")
        spec = resolve_cutoff(spec, first, last)
        arrays = load_split(store.con, name, kind=spec.kind, cutoff=spec.cutoff, seed=spec.seed)
    data = _training_data(arrays, None)
    if data.n_interactions == 0:
        raise InputError(
            f"the training split of dataset '{name}' ({spec}) is empty: "
            "no interaction to fit the model on"
        )
    users, indptr, items = _relevance(arrays, data, exclude_seen=True)
    return HeldOut(
        data=data, users=users, indptr=indptr, items=items, split=str(spec), dataset=name
    )


def train(
    db: str | Path | None = None,
    *,
    out: str | Path,
    dataset: str | None = None,
    split: str | SplitSpec = "temporal",
    arch: str = "next-item",
    seq_len: int | None = None,
    embedding: int | None = None,
    hidden: int | None = None,
    epochs: int | None = None,
    horizon: int = LSTM_DEFAULTS.horizon,
    samples_per_epoch: int | None = None,
    negatives: int = SEED_DEFAULTS.negatives,
    seed: int = 0,
    exporter: str = "weights",
    progress: Progress | None = None,
) -> TrainResult:
    """Train an LSTM on the training split and write ``out`` (ONNX) plus its JSON sidecar.

    ``arch="next-item"``: abkit's next-item model
    (:func:`abkit_recommenders.train_lstm.train_lstm`; ``horizon`` and ``exporter`` apply);
    ``arch="seed"``: the article's two-layer model of "will the user take this item next",
    trained on (history, candidate) pairs with ``negatives`` sampled negatives per positive
    (:func:`abkit_recommenders.train_seed.train_seed`). Sizes left as None take the
    architecture's defaults (:data:`~abkit.replay.lstm_contract.DEFAULTS`,
    :data:`~abkit.replay.lstm_contract.SEED_DEFAULTS`). Needs torch
    (:class:`~abkit_recommenders.train_lstm.TorchMissingError` names the install line). The
    store is only read.
    """
    if arch not in ARCHS:
        raise InputError(f"{param('arch')}: " + unknown_choice("arch", arch, ARCHS))
    if exporter not in ("weights", "dynamo"):
        raise InputError(
            "--exporter: " + unknown_choice("exporter", exporter, ("weights", "dynamo"))
        )
    if arch == "seed" and exporter != "weights":
        raise InputError(f"{param('exporter')} {exporter}: the seed model has one exporter")
    out_path = Path(out)
    if out_path.suffix != ".onnx":
        raise InputError(f"{param('out')} {out_path}: the model file must end in .onnx")
    if not out_path.parent.exists():
        raise InputError(f"{param('out')} {out_path}: folder {out_path.parent} does not exist")

    require_torch()  # fail before reading anything when torch is missing
    data, split_text, name = load_training_data(db, dataset=dataset, split=split, seed=seed)
    progress = progress or no_progress
    defaults: Any = SEED_DEFAULTS if arch == "seed" else LSTM_DEFAULTS
    sizes = {
        "seq_len": defaults.seq_len if seq_len is None else seq_len,
        "embedding": defaults.embedding if embedding is None else embedding,
        "hidden": defaults.hidden if hidden is None else hidden,
        "epochs": defaults.epochs if epochs is None else epochs,
        "samples_per_epoch": (
            defaults.samples_per_epoch if samples_per_epoch is None else samples_per_epoch
        ),
    }
    with progress(f"training lstm, arch {arch} (epochs)", sizes["epochs"]) as advance:
        if arch == "seed":
            trained = train_seed(data, **sizes, negatives=negatives, seed=seed, progress=advance)
        else:
            trained = train_lstm(
                data,
                **sizes,
                horizon=horizon,
                seed=seed,
                exporter=cast(Literal["weights", "dynamo"], exporter),
                progress=advance,
            )
    model_file, sidecar = save_trained(trained, out_path)
    return TrainResult(
        model="lstm",
        arch=arch,
        path=str(model_file),
        sidecar=str(sidecar),
        dataset=name,
        split=split_text,
        fingerprint=data.fingerprint,
        n_items=data.n_items,
        train_interactions=data.n_interactions,
        examples=trained.examples,
        epochs=trained.epochs,
        final_loss=trained.final_loss,
    )
