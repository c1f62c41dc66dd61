"""Synthetic e-commerce traffic with planted, exactly known effects.

:func:`simulate` writes a dataset (items, sessions of events, a carousel A/B experiment with
logged propensities, assignments and the planted truth) into a store; :class:`World`
regenerates the latent state behind it from the config alone, so estimators can be checked
against the truth.
"""

from __future__ import annotations

from abkit.simulate.config import SimulationConfig
from abkit.simulate.core import SimulationSummary, simulate
from abkit.simulate.world import World

__all__ = ["SimulationConfig", "SimulationSummary", "World", "simulate"]
