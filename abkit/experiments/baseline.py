"""Baselines: a replay run's per-user metric vectors in a small JSON file meant to be committed.

A gate compares a candidate run with a baseline *paired by user*, so the baseline must keep
each user's value, not only the mean: a paired test needs the per-user cross term
``Σ b_i c_i``, which no summary of the baseline alone provides. The file therefore stores, per
metric, the per-user values in ascending ``user_id`` order, rounded to ``decimals`` (default 6,
far below any gate margin) and written as integers when a metric is 0/1 (``hit@K``). User ids
themselves are not stored: a BLAKE2b digest of the sorted id list checks that the candidate
scored exactly the same users, in the same order.

Size: about ``users x metrics x (1 + the mean printed length of a value)`` bytes. Per-user
ranking metrics are mostly 0 (one byte plus a comma); a non-zero 6-decimal value takes 8-9.
The committed ``experiments/ci.baseline.json`` (1,900 users, 2 metrics) is 18 kB;
100,000 users x 3 metrics would be ~1 MB (use fewer metrics, ``--decimals 4``, or a sample
of users in the spec to keep a committed file small).

Format (``format: "abkit-baseline"``, ``version: 1``)::

    {"format": "abkit-baseline", "version": 1, "content_sha256": "<64 hex digits>",
     "abkit_version": "0.1.0", "created_at": "2024-...", "decimals": 6,
     "run": {"run_id", "name", "dataset", "model", "kind", "params", "split", "ks",
             "fingerprint", "code_version", "created_at"},
     "users": {"count": 1000, "digest": "<blake2b-128 of sorted ids>", "order": "user_id"},
     "metrics": {"ndcg@10": {"mean": 0.12, "sd": 0.2, "values": [0, 0.386853, ...]}}}

Content digest: ``content_sha256`` is the SHA-256 of the rest of the document in a canonical
JSON form (:func:`content_digest`: keys sorted, no whitespace, numbers as Python's ``json``
writes them), written at save and checked at load. It protects against ACCIDENTAL edits (a
merge that took half of each side, a hand "fix" that also updated the mean and sd, a
formatter that rounded the values): such a file is refused with a one-line
:class:`~abkit.errors.SpecError` saying how to save it again. It is no protection against
tampering: anyone can recompute it (the file is not signed); review changes to a committed
baseline like code. Re-indenting or re-ordering the keys keeps the digest valid; changing any
value, mean, sd, run field or count does not. A baseline saved before the digest existed
(no ``content_sha256``) still loads, with an :class:`~abkit.errors.AbkitWarning` that edits to
it cannot be detected until it is saved again.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abkit import __version__
from abkit._util import unknown_choice
from abkit.data.runs_sql import fetch_run, run_metric_names, user_values
from abkit.data.store import open_store, utcnow
from abkit.errors import AbkitWarning, SpecError, StoreError, param

if TYPE_CHECKING:
    import numpy as np

    from abkit.data.runs_sql import RunRecord

__all__ = [
    "BASELINE_FORMAT",
    "BASELINE_VERSION",
    "Baseline",
    "BaselineMetric",
    "baseline_from_run",
    "baseline_of_stored_run",
    "content_digest",
    "load_baseline",
    "save_baseline",
    "users_digest",
]

BASELINE_FORMAT = "abkit-baseline"
BASELINE_VERSION = 1
#: the key of the content digest (:func:`content_digest`) in a baseline file
DIGEST_KEY = "content_sha256"
_REGENERATE = "`abkit run SPEC --save-baseline` or `abkit baseline save RUN --out FILE`"


def content_digest(document: dict[str, Any]) -> str:
    """SHA-256 (hex) of a parsed baseline document without its ``content_sha256`` key, in a
    canonical JSON form: keys sorted, no whitespace, non-ASCII kept, numbers as ``json``
    writes them (the shortest repr that round-trips a float)."""
    content = {key: value for key, value in document.items() if key != DIGEST_KEY}
    canonical = json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def users_digest(user_ids: Any) -> str:
    """BLAKE2b-128 of the user ids in the given order, joined by the unit separator."""
    digest = hashlib.blake2b(digest_size=16)
    ids = [str(u) for u in user_ids]
    digest.update(str(len(ids)).encode())
    digest.update("\x1f".join(ids).encode())
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True, eq=False)
class BaselineMetric:
    """One metric of a baseline: its mean, sd and per-user values (ascending user id)."""

    name: str
    mean: float
    sd: float
    values: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "sd": self.sd, "n": int(self.values.size)}


@dataclass(frozen=True, kw_only=True, eq=False)
class Baseline:
    """A saved baseline (see the module docstring for the file format).

    ``source`` says where it came from (the file path, or ``run <id>``); ``run`` holds the
    run record it was saved from (model, parameters, split, data fingerprint).
    """

    source: str
    run: dict[str, Any]
    n_users: int
    users_digest: str
    decimals: int
    created_at: str
    abkit_version: str
    metrics: dict[str, BaselineMetric]

    @property
    def fingerprint(self) -> str:
        return str(self.run.get("fingerprint", ""))

    @property
    def label(self) -> str:
        return str(self.run.get("name") or self.run.get("model") or "baseline")

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "run": self.run,
            "users": self.n_users,
            "users_digest": self.users_digest,
            "decimals": self.decimals,
            "created_at": self.created_at,
            "abkit_version": self.abkit_version,
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
        }


def _encode(values: np.ndarray, decimals: int) -> str:
    """Compact JSON list: integers for whole numbers (0/1 metrics), else rounded floats."""
    import numpy as np

    rounded = np.round(values.astype(np.float64), decimals)
    if np.all(rounded == np.round(rounded)):
        return json.dumps(rounded.astype(np.int64).tolist(), separators=(",", ":"))
    # repr of a rounded float is its shortest form (0.386853); whole numbers print as 0 / 1
    return "[" + ",".join("0" if v == 0 else repr(v) for v in rounded.tolist()) + "]"


def baseline_from_run(
    con: Any, run: RunRecord, *, metrics: list[str] | None = None, decimals: int = 6
) -> Baseline:
    """Read a ranking run's per-user vectors from the store into a :class:`Baseline`.

    ``metrics`` defaults to every metric the run recorded; an unknown one raises
    :class:`StoreError` with a "did you mean". Off-policy runs cannot be baselines (their
    per-round vectors are as long as the logs).
    """
    import numpy as np

    if run.kind != "ranking":
        raise StoreError(
            f"run {run.run_id} is an off-policy run; a baseline holds per-user ranking metrics "
            "(compare off-policy runs with `abkit compare RUN_A RUN_B`)"
        )
    if not 0 <= decimals <= 12:
        raise StoreError(f"--decimals must be between 0 and 12, got {decimals}")
    recorded = run_metric_names(con, run.run_id)
    if not recorded:
        raise StoreError(f"run {run.run_id} recorded no per-user metrics")
    chosen = metrics or recorded
    for name in chosen:
        if name not in recorded:
            raise StoreError(f"run {run.run_id}: " + unknown_choice("metric", name, recorded))
    out: dict[str, BaselineMetric] = {}
    digest = ""
    n_users = 0
    for name in chosen:
        user_ids, raw = user_values(con, run.run_id, name)
        values = np.round(raw, decimals)
        this_digest = users_digest(user_ids.tolist())
        if digest and this_digest != digest:
            raise StoreError(
                f"run {run.run_id}: metric {name} was recorded for other users than "
                f"{chosen[0]}; a baseline needs one user set"
            )
        digest, n_users = this_digest, int(values.size)
        out[name] = BaselineMetric(
            name=name,
            mean=float(values.mean()) if values.size else math.nan,
            sd=float(values.std(ddof=1)) if values.size > 1 else math.nan,
            values=values,
        )
    return Baseline(
        source=f"run {run.run_id}",
        run=run.to_provenance_dict(),
        n_users=n_users,
        users_digest=digest,
        decimals=decimals,
        created_at=utcnow().isoformat(timespec="seconds"),
        abkit_version=__version__,
        metrics=out,
    )


def baseline_of_stored_run(
    db: str | Path | None, run: str, *, metrics: list[str] | None = None, decimals: int = 6
) -> Baseline:
    """Open the store at ``db`` and read the run ``run`` (id or unique name) as a baseline."""

    with open_store(db) as store:
        record = fetch_run(store.con, run)
        return baseline_from_run(store.con, record, metrics=metrics, decimals=decimals)


def save_baseline(baseline: Baseline, path: Path) -> int:
    """Write ``baseline`` as JSON to ``path`` (atomically: a temp file, then rename).

    Returns the file size in bytes. The header is indented for readable diffs; each metric's
    values stay on one line so the file stays small.
    """
    placeholders: dict[str, str] = {}
    metrics: dict[str, Any] = {}
    for i, (name, metric) in enumerate(baseline.metrics.items()):
        key = f"@@values{i}@@"
        placeholders[json.dumps(key)] = _encode(metric.values, baseline.decimals)
        metrics[name] = {
            "mean": _finite(metric.mean),
            "sd": _finite(metric.sd),
            "values": key,
        }
    document = {
        "format": BASELINE_FORMAT,
        "version": BASELINE_VERSION,
        DIGEST_KEY: "",  # filled in below, from the text as it will be read back
        "abkit_version": baseline.abkit_version,
        "created_at": baseline.created_at,
        "decimals": baseline.decimals,
        "run": baseline.run,
        "users": {"count": baseline.n_users, "digest": baseline.users_digest, "order": "user_id"},
        "metrics": metrics,
    }
    text = json.dumps(document, indent=2, allow_nan=False)
    for key, encoded in placeholders.items():
        text = text.replace(key, encoded)
    # the digest of the document exactly as load_baseline will parse it; the top-level key
    # is the first occurrence (it precedes "run", the only place free text can appear)
    empty = f'"{DIGEST_KEY}": ""'
    text = text.replace(empty, f'"{DIGEST_KEY}": "{content_digest(json.loads(text))}"', 1)
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"{path}: is a directory; pass a file name with {param('out')}")
    if not path.parent.exists():
        raise StoreError(f"{path}: folder {path.parent} does not exist")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)
    return path.stat().st_size


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _need(obj: Any, key: str, kind: type | tuple[type, ...], where: str, path: Path) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise SpecError(f"{path}: missing key '{key}' in {where}")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise SpecError(f"{path}: '{key}' in {where} must be {names}, got {value!r:.40}")
    return value


def _check_digest(document: dict[str, Any], path: Path) -> None:
    """Refuse a file whose content no longer matches its ``content_sha256``; warn when it
    has none (saved before the digest existed)."""
    if DIGEST_KEY not in document:
        warnings.warn(
            AbkitWarning(
                f"{path}: this baseline has no {DIGEST_KEY} (saved by an older abkit), so "
                f"edits to it cannot be detected; save it again with {_REGENERATE}"
            ),
            stacklevel=3,
        )
        return
    stored = document[DIGEST_KEY]
    if not isinstance(stored, str) or not re.fullmatch(r"[0-9a-f]{64}", stored):
        raise SpecError(
            f"{path}: '{DIGEST_KEY}' in the file must be 64 hex digits, got {stored!r:.40}"
        )
    if content_digest(document) != stored:
        raise SpecError(
            f"{path}: the file was edited after it was saved (its {DIGEST_KEY} does not "
            f"match); regenerate it with {_REGENERATE}"
        )


def load_baseline(path: Path) -> Baseline:
    """Read and validate a baseline JSON file; :class:`SpecError` names the file and the key.

    The structure is checked first (each problem named precisely), then the content digest
    (see the module docstring): a file edited after it was saved is refused; one without a
    digest loads with an :class:`~abkit.errors.AbkitWarning`.
    """
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise SpecError(
            f"{path}: baseline file not found; create it with "
            f"`abkit baseline save RUN --out {path}`"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the baseline ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != BASELINE_FORMAT:
        raise SpecError(f'{path}: not an abkit baseline (expected "format": "{BASELINE_FORMAT}")')
    version = document.get("version")
    if version != BASELINE_VERSION:
        raise SpecError(
            f"{path}: baseline format version {version}, this abkit reads version "
            f"{BASELINE_VERSION}; save the baseline again"
        )
    run = _need(document, "run", dict, "the file", path)
    for key in ("run_id", "model", "fingerprint", "split"):
        _need(run, key, str, "'run'", path)
    users = _need(document, "users", dict, "the file", path)
    count = _need(users, "count", int, "'users'", path)
    digest = _need(users, "digest", str, "'users'", path)
    decimals = _need(document, "decimals", int, "the file", path)
    raw_metrics = _need(document, "metrics", dict, "the file", path)
    if not raw_metrics:
        raise SpecError(f"{path}: the baseline holds no metrics")
    metrics: dict[str, BaselineMetric] = {}
    for name, entry in raw_metrics.items():
        where = f"metrics.'{name}'"
        raw = _need(entry, "values", list, where, path)
        try:
            values = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise SpecError(f"{path}: {where}.values must be a list of numbers") from None
        if values.ndim != 1 or not np.all(np.isfinite(values)):
            raise SpecError(f"{path}: {where}.values must be a list of finite numbers")
        if values.size != count:
            raise SpecError(f"{path}: {where} has {values.size} values but users.count is {count}")
        stored_mean = entry.get("mean")
        mean = float(values.mean()) if values.size else math.nan
        if isinstance(stored_mean, int | float) and abs(stored_mean - mean) > 10.0**-decimals:
            raise SpecError(
                f"{path}: {where}.mean is {stored_mean} but its values average {mean:.6g}; "
                "the file was edited or damaged"
            )
        metrics[name] = BaselineMetric(
            name=name,
            mean=mean,
            sd=float(values.std(ddof=1)) if values.size > 1 else math.nan,
            values=values,
        )
    _check_digest(document, path)
    return Baseline(
        source=str(path),
        run=run,
        n_users=count,
        users_digest=digest,
        decimals=decimals,
        created_at=str(document.get("created_at", "")),
        abkit_version=str(document.get("abkit_version", "")),
        metrics=metrics,
    )
