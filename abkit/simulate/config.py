"""The simulator's parameters, validated once when the config is built."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from abkit.errors import InputError, param

DEFAULT_START = datetime(2024, 1, 1)


@dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    """Everything that determines a simulated dataset; the same config gives the same tables.

    Validation happens here, so an invalid config cannot exist: each problem raises a one-line
    :class:`~abkit.errors.InputError` naming the ``abkit simulate`` option (``--users`` for the
    field ``users``, ``--pre-days`` for ``pre_days``...). ``arm_lifts`` has no CLI option.

    Fields:
        users: users in the world; every one of them visits during the experiment window
            (the experiment's population), most also in the pre-period.
        items: catalogue size.
        days: length of the experiment window; ``pre_days``: the pre-period before it.
        arms, split: arm names (the first is control) and their designed shares (sum to 1).
        lift: planted true relative lift in user conversion of every non-control arm over
            control; ``arm_lifts`` overrides it per arm (first entry 0.0).
        srm: plant a sample-ratio mismatch: this fraction of non-control users lose their
            assignment and all their experiment-window events and impressions (a logging bug).
        base_conversion: mean true conversion probability of a control user over the window.
        slots: carousel size. seed: the only source of randomness.
        dataset, experiment: names in the store. start: UTC start of the pre-period; the
            experiment starts ``pre_days`` later (a timezone-aware value is converted to UTC).
    """

    users: int = 20_000
    items: int = 1_000
    days: int = 14
    pre_days: int = 7
    arms: tuple[str, ...] = ("control", "treatment")
    split: tuple[float, ...] = (0.5, 0.5)
    lift: float = 0.2
    arm_lifts: tuple[float, ...] | None = None
    srm: float = 0.0
    base_conversion: float = 0.05
    slots: int = 4
    seed: int = 0
    dataset: str = "sim"
    experiment: str = "carousel"
    start: datetime = field(default=DEFAULT_START)

    def __post_init__(self) -> None:
        # Normalise sequences to tuples and numbers to their types (frozen: object.__setattr__).
        object.__setattr__(self, "arms", tuple(str(a) for a in self.arms))
        object.__setattr__(self, "split", tuple(float(s) for s in self.split))
        if self.arm_lifts is not None:
            object.__setattr__(self, "arm_lifts", tuple(float(x) for x in self.arm_lifts))
        if self.start.tzinfo is not None:
            object.__setattr__(
                self, "start", self.start.astimezone(timezone.utc).replace(tzinfo=None)
            )
        _validate(self)

    @property
    def lifts(self) -> tuple[float, ...]:
        """The planted relative lift of each arm (0.0 for control)."""
        if self.arm_lifts is not None:
            return self.arm_lifts
        return (0.0,) + (float(self.lift),) * (len(self.arms) - 1)

    @property
    def experiment_start(self) -> datetime:
        from datetime import timedelta

        return self.start + timedelta(days=self.pre_days)

    @property
    def experiment_end(self) -> datetime:
        """Exclusive end of the experiment window."""
        from datetime import timedelta

        return self.start + timedelta(days=self.pre_days + self.days)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["arms"] = list(self.arms)
        out["split"] = list(self.split)
        out["arm_lifts"] = None if self.arm_lifts is None else list(self.arm_lifts)
        out["start"] = self.start.isoformat()
        return out


def _int(config: SimulationConfig, name: str, option: str, minimum: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{option} must be an integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{option} must be at least {minimum}, got {value}")


def _validate(c: SimulationConfig) -> None:
    _int(c, "users", param("users"), 2)
    _int(c, "slots", param("slots"), 1)
    _int(c, "items", param("items"), max(2, c.slots))
    _int(c, "days", param("days"), 1)
    _int(c, "pre_days", param("pre_days"), 0)
    _int(c, "seed", param("seed"), 0)
    if len(c.arms) < 2:
        raise InputError(f"{param('arms')} needs at least two arm names, got {','.join(c.arms)!r}")
    for arm in c.arms:
        if not arm.strip():
            raise InputError(f"{param('arms')}: arm names must not be empty")
    duplicates = sorted({a for a in c.arms if c.arms.count(a) > 1})
    if duplicates:
        raise InputError(f"{param('arms')}: duplicate arm name {duplicates[0]!r}")
    if len(c.split) != len(c.arms):
        raise InputError(
            f"{param('split')} has {len(c.split)} shares but {param('arms')} has {len(c.arms)} arms"
        )
    if not all(math.isfinite(s) and s > 0 for s in c.split):
        shares = ", ".join(f"{s:g}" for s in c.split)
        raise InputError(f"{param('split')}: every share must be positive, got {shares}")
    total = math.fsum(c.split)
    if abs(total - 1.0) > 1e-6:
        raise InputError(f"{param('split')}: shares must sum to 1, got {total:g}")
    if not math.isfinite(c.lift) or c.lift < -1:
        raise InputError(
            f"{param('lift')} must be a relative change of at least -1, got {c.lift:g}"
        )
    if c.arm_lifts is not None:
        if len(c.arm_lifts) != len(c.arms):
            raise InputError(
                f"arm_lifts has {len(c.arm_lifts)} values but {param('arms')} has "
                f"{len(c.arms)} arms"
            )
        if c.arm_lifts[0] != 0.0:
            raise InputError(
                f"arm_lifts: the control arm's lift must be 0.0, got {c.arm_lifts[0]:g}"
            )
        if not all(math.isfinite(x) and x >= -1 for x in c.arm_lifts):
            raise InputError("arm_lifts: every lift must be a relative change of at least -1")
    if not (math.isfinite(c.srm) and 0 <= c.srm < 1):
        raise InputError(f"{param('srm')} must be a fraction in [0, 1), got {c.srm:g}")
    if not (math.isfinite(c.base_conversion) and 0 < c.base_conversion < 1):
        raise InputError(
            f"{param('base_conversion')} must be a probability in (0, 1), got {c.base_conversion:g}"
        )
    if not c.dataset.strip():
        raise InputError(f"{param('dataset')} must not be empty")
    if not c.experiment.strip():
        raise InputError(f"{param('experiment')} must not be empty")
