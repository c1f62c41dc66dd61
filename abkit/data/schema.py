"""The versioned schema of an abkit traffic store (one DuckDB file).

Bump :data:`SCHEMA_VERSION` whenever a table or column changes; a store written with another
version is refused with a clear message instead of being misread.

Tables (every data table carries a ``dataset`` column, so several datasets share one file):

``abkit_meta(key, value)``
    ``schema_version`` and the abkit version that created the file.
``datasets(dataset, source, unit, params, created_at)``
    ``source`` is ``simulate`` or ``ingest``; ``unit`` is the randomisation / analysis unit:
    ``user``, or ``impression`` for logs without a user id (each impression is its own unit).
    ``params`` is JSON (simulator parameters, ingest presets).
``ingests(dataset, source_path, sha256, table_name, rows, ingested_at)``
    One row per ingested file; ``sha256`` of the file's bytes detects re-ingesting it.
``events(dataset, user_id, session_id, item_id, event_type, ts, value)``
    Interaction logs. ``event_type`` is one of :data:`EVENT_TYPES`; ``value`` is the revenue of
    a purchase (or the rating of a ``rating`` event), NULL otherwise. ``ts`` is UTC.
``impressions(dataset, impression_id, slate_id, user_id, session_id, ts, variant, item_id,
position, propensity, click, conversion, value)``
    Logged recommendation impressions: one row per item shown in one slot of one slate.
    ``propensity`` is the logging policy's probability of showing ``item_id`` in ``position``
    (0 < p <= 1); ``variant`` is the arm / logging policy that served it. ``click`` and
    ``conversion`` are 0/1 outcomes, ``value`` the revenue attributed to the impression.
``assignments(dataset, experiment, user_id, variant, assigned_at)``
    Which A/B arm each randomisation unit was assigned to.
``experiments(dataset, experiment, variants, split, control, start_ts, end_ts)``
    ``variants`` in a fixed order; ``split`` the designed shares (NULL when unknown). The
    experiment window is ``start_ts <= ts < end_ts`` (end exclusive); events before
    ``start_ts`` form the pre-experiment period used by CUPED.
``impression_features(dataset, impression_id, feature, value)``
    The context of logged impressions, sparse (rows with value 0 are left out): a numeric
    context column ``name`` is the feature ``name``; a categorical one is one-hot, the feature
    ``name=level`` with value 1. The Open Bandit preset fills it from ``user_feature_*``
    (categorical) and ``user-item_affinity_<item>`` (numeric); impression-trained
    recommenders read it as their context (:mod:`abkit.data.replay_sql`).
``items(dataset, item_id, category, price)``
    The catalogue, when known (the simulator writes it; OBD item context fills ids).
``truth(dataset, experiment, variant, metric, value)``
    Ground truth planted by the simulator (e.g. ``conversion_rate`` per arm, ``lift``,
    ``policy_ctr`` per logging policy), so tests can check estimators against it.
``runs``, ``run_user_metrics``, ``run_estimates``, ``run_rounds``
    Replay runs: the run record, per-user metric values (for paired comparisons), off-policy
    estimates, and per-logged-round importance weights and rewards (for paired off-policy
    comparisons of two policies on the same logs).
"""

from __future__ import annotations

from abkit.data.sql import quote_ident

SCHEMA_VERSION = 2

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "rating")

TABLES: dict[str, str] = {
    "abkit_meta": """
        key VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL""",
    "datasets": """
        dataset VARCHAR PRIMARY KEY,
        source VARCHAR NOT NULL,
        unit VARCHAR NOT NULL DEFAULT 'user' CHECK (unit IN ('user', 'impression')),
        params VARCHAR,
        created_at TIMESTAMP NOT NULL""",
    "ingests": """
        dataset VARCHAR NOT NULL,
        source_path VARCHAR NOT NULL,
        sha256 VARCHAR NOT NULL,
        table_name VARCHAR NOT NULL,
        rows BIGINT NOT NULL,
        ingested_at TIMESTAMP NOT NULL,
        PRIMARY KEY (dataset, sha256, table_name)""",
    "events": """
        dataset VARCHAR NOT NULL,
        user_id VARCHAR NOT NULL,
        session_id VARCHAR,
        item_id VARCHAR,
        event_type VARCHAR NOT NULL,
        ts TIMESTAMP NOT NULL,
        value DOUBLE""",
    "impressions": """
        dataset VARCHAR NOT NULL,
        impression_id BIGINT NOT NULL,
        slate_id BIGINT,
        user_id VARCHAR NOT NULL,
        session_id VARCHAR,
        ts TIMESTAMP NOT NULL,
        variant VARCHAR,
        item_id VARCHAR NOT NULL,
        position INTEGER NOT NULL,
        propensity DOUBLE NOT NULL CHECK (propensity > 0 AND propensity <= 1),
        click TINYINT NOT NULL,
        conversion TINYINT,
        value DOUBLE""",
    "impression_features": """
        dataset VARCHAR NOT NULL,
        impression_id BIGINT NOT NULL,
        feature VARCHAR NOT NULL,
        value DOUBLE NOT NULL""",
    "assignments": """
        dataset VARCHAR NOT NULL,
        experiment VARCHAR NOT NULL,
        user_id VARCHAR NOT NULL,
        variant VARCHAR NOT NULL,
        assigned_at TIMESTAMP""",
    "experiments": """
        dataset VARCHAR NOT NULL,
        experiment VARCHAR NOT NULL,
        variants VARCHAR[] NOT NULL,
        split DOUBLE[],
        control VARCHAR NOT NULL,
        start_ts TIMESTAMP,
        end_ts TIMESTAMP,
        PRIMARY KEY (dataset, experiment)""",
    "items": """
        dataset VARCHAR NOT NULL,
        item_id VARCHAR NOT NULL,
        category VARCHAR,
        price DOUBLE""",
    "truth": """
        dataset VARCHAR NOT NULL,
        experiment VARCHAR,
        variant VARCHAR,
        metric VARCHAR NOT NULL,
        value DOUBLE NOT NULL""",
    "runs": """
        run_id VARCHAR PRIMARY KEY,
        name VARCHAR,
        dataset VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        kind VARCHAR NOT NULL CHECK (kind IN ('ranking', 'offpolicy')),
        params VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        ks INTEGER[],
        fingerprint VARCHAR NOT NULL,
        code_version VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        users BIGINT,
        summary VARCHAR""",
    "run_user_metrics": """
        run_id VARCHAR NOT NULL,
        user_id VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE NOT NULL""",
    "run_estimates": """
        run_id VARCHAR NOT NULL,
        estimator VARCHAR NOT NULL,
        value DOUBLE,
        ci_low DOUBLE,
        ci_high DOUBLE,
        ess DOUBLE,
        n BIGINT,
        diagnostics VARCHAR""",
    "run_rounds": """
        run_id VARCHAR NOT NULL,
        impression_id BIGINT NOT NULL,
        weight DOUBLE NOT NULL,
        reward DOUBLE NOT NULL,
        q_logged DOUBLE,
        q_policy DOUBLE""",
}


def create_statements() -> list[str]:
    """The DDL that creates an empty store of :data:`SCHEMA_VERSION`."""

    return [f"CREATE TABLE {quote_ident(name)} ({cols})" for name, cols in TABLES.items()]
