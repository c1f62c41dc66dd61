"""abkit.experiments.spec: parsing experiments/*.toml, and the clear errors a bad spec gets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from abkit.errors import SpecError
from abkit.experiments.spec import GateCheck, load_spec

REPO = Path(__file__).resolve().parents[2]

VALID = """\
name = "t"
description = "a test spec"

[data]
dataset = "sim"
split = "temporal"
simulate = { users = 300, items = 60, days = 5, pre_days = 10, seed = 2 }

[models.als]
model = "als"
params = { factors = 8, iterations = 3, seed = 1 }

[models.pop]
model = "popularity"

[evaluation]
metrics = ["ndcg@10", "hit_rate@10", "recall@5"]

[compare]
reference = "pop"
n_resamples = 500

[gate]
candidate = "als"
baseline = "t.baseline.json"
alpha = 0.1

[[gate.checks]]
metric = "ndcg@10"
max_relative_drop = 0.05

[[gate.checks]]
metric = "hit_rate@10"
max_absolute_drop = 0.02
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(text)
    return path


def test_valid_spec(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, VALID))
    assert spec.name == "t"
    assert spec.data.dataset == "sim"
    assert dict(spec.data.simulate or {}) == {
        "users": 300,
        "items": 60,
        "days": 5,
        "pre_days": 10,
        "seed": 2,
    }
    assert [m.label for m in spec.models] == ["als", "pop"]
    assert spec.model("als").params == {"factors": 8, "iterations": 3, "seed": 1}
    assert spec.metrics == ("ndcg@10", "hit_rate@10", "recall@5")
    assert spec.ks == (5, 10)
    assert spec.compare.reference == "pop"
    assert spec.compare.n_resamples == 500
    assert spec.gate is not None
    assert spec.gate.baseline == tmp_path / "t.baseline.json"
    assert spec.gate.alpha == 0.1
    assert spec.gate.checks == (
        GateCheck(metric="ndcg@10", max_drop=0.05),
        GateCheck(metric="hit_rate@10", max_drop=0.02, margin_type="absolute"),
    )
    assert spec.to_dict()["gate"]["checks"][1]["margin_type"] == "absolute"


def test_defaults(tmp_path: Path) -> None:
    text = (
        '[data]\ndataset = "d"\n[models.a]\nmodel = "random"\n[evaluation]\nmetrics = ["mrr@3"]\n'
    )
    spec = load_spec(_write(tmp_path, text))
    assert spec.name == "t"  # the file name
    assert spec.data.split == "temporal"
    assert spec.data.simulate is None
    assert spec.compare.reference == "a"
    assert spec.compare.correction == "holm"
    assert spec.gate is None


def test_relative_values_as_percentages_and_model_names_in_any_case(tmp_path: Path) -> None:
    """``"5%"`` is 0.05 as on the command line, and ``model = "ALS"`` is the plug-in als."""
    text = (
        VALID.replace("max_relative_drop = 0.05", 'max_relative_drop = "5%"')
        .replace("seed = 2 }", 'seed = 2, lift = "150%", arm_lifts = ["0%", 0.3] }')
        .replace('model = "als"', 'model = "ALS"')
    )
    spec = load_spec(_write(tmp_path, text))
    assert spec.gate is not None
    assert spec.gate.checks[0] == GateCheck(metric="ndcg@10", max_drop=0.05)
    assert (spec.data.simulate or {})["lift"] == 1.5
    assert (spec.data.simulate or {})["arm_lifts"] == (0.0, 0.3)
    assert spec.model("als").model == "als"


def test_the_committed_ci_spec_parses() -> None:
    spec = load_spec(REPO / "experiments" / "ci.toml")
    assert spec.gate is not None
    assert spec.gate.candidate == "als"
    assert spec.gate.baseline == REPO / "experiments" / "ci.baseline.json"
    assert {c.metric for c in spec.gate.checks} == {"ndcg@10", "hit_rate@10"}


def _edit(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new, 1)


CASES = [
    # unknown keys, with "did you mean"
    (
        _edit('description = "a test spec"', 'descripton = "x"'),
        "unknown key 'descripton' in the top level (did you mean 'description'?); allowed: name, "
        "description, data, models, evaluation, compare, gate",
    ),
    (
        _edit("[evaluation]\nmetrics", "[evaluation]\nmetrcs"),
        "unknown key 'metrcs' in [evaluation] (did you mean 'metrics'?); allowed: metrics",
    ),
    (
        _edit('model = "als"\nparams', 'model = "als"\nparam'),
        "unknown key 'param' in [models.als] (did you mean 'params'?); allowed: model, params",
    ),
    (
        _edit("max_relative_drop = 0.05", "max_relativ_drop = 0.05"),
        "unknown key 'max_relativ_drop' in [[gate.checks]] #1 (did you mean 'max_relative_drop'?)",
    ),
    (
        _edit("users = 300", "user = 300"),
        "unknown key 'user' in [data.simulate] (did you mean 'users'?)",
    ),
    (_edit("alpha = 0.1", "alpah = 0.1"), "unknown key 'alpah' in [gate] (did you mean 'alpha'?)"),
    # unknown model, parameter
    (
        _edit('model = "als"', 'model = "alss"'),
        "[models.als] unknown model 'alss' (did you mean 'als'?); expected one of: als, ctr, "
        "logistic, lstm, popularity, random",
    ),
    (
        _edit("factors = 8", "factor = 8"),
        "[models.als] unknown parameter of model 'als' 'factor' (did you mean 'factors'?)",
    ),
    # metric and K
    (
        _edit('"ndcg@10", "hit_rate@10"', '"ndgc@10", "hit_rate@10"'),
        "[evaluation] metrics: unknown metric 'ndgc' (did you mean 'ndcg'?)",
    ),
    (
        _edit('"recall@5"', '"recall@0"'),
        "[evaluation] metrics: metric 'recall@0': K must be a positive integer, got 0",
    ),
    (
        _edit('"recall@5"', '"recall@ten"'),
        "[evaluation] metrics: metric 'recall@ten': K must be a positive integer, got 'ten'",
    ),
    (
        _edit('"recall@5"', '"recall@100"'),
        "[evaluation] metrics: K=100 in 'recall@100' exceeds the 60 simulated items",
    ),
    (
        _edit('"recall@5"', '"coverage@10"'),
        "[evaluation] metrics: coverage@10 is one number per run, not per user",
    ),
    (
        _edit('metric = "ndcg@10"', 'metric = "ndcg@20"'),
        "[[gate.checks]] #1: metric 'ndcg@20' is not evaluated (did you mean 'ndcg@10'?); "
        "[evaluation] metrics: ndcg@10, hit_rate@10, recall@5",
    ),
    # missing baseline, gate shape
    (
        _edit('baseline = "t.baseline.json"\n', ""),
        'missing baseline: [gate] needs baseline = "FILE.json" (save one with `abkit baseline '
        "save RUN --out FILE.json`)",
    ),
    (
        _edit('candidate = "als"', 'candidate = "alsx"'),
        "[gate] candidate: unknown model label 'alsx' (did you mean 'als'?); expected one of: als, "
        "pop",
    ),
    (
        _edit("max_relative_drop = 0.05", "max_relative_drop = 0.05\nmax_absolute_drop = 0.01"),
        "[[gate.checks]] #1 (ndcg@10): give exactly one of max_relative_drop (0.01 = 1%) or "
        "max_absolute_drop",
    ),
    (
        _edit("max_relative_drop = 0.05", "max_relative_drop = 5"),
        "[[gate.checks]] #1 (ndcg@10): max_relative_drop = 5: a relative drop is a fraction; "
        'did you mean 0.05 (5%)? Write 0.05 or "5%"',
    ),
    (
        _edit("max_relative_drop = 0.05", 'max_relative_drop = "150%"'),
        "[[gate.checks]] #1: gate ndcg@10: a relative drop is a fraction below 1 (0.01 = 1%), "
        "got 1.5",
    ),
    (
        _edit("max_relative_drop = 0.05", 'max_relative_drop = "five"'),
        '[[gate.checks]] #1 (ndcg@10): max_relative_drop = "five": expected a fraction such as '
        "0.2 or a percentage such as 20%",
    ),
    (
        _edit("max_relative_drop = 0.05", "max_relative_drop = true"),
        "[[gate.checks]] #1 (ndcg@10): max_relative_drop must be a number or a percentage such "
        'as "5%", got True',
    ),
    (
        _edit("max_absolute_drop = 0.02", 'max_absolute_drop = "2%"'),
        '[[gate.checks]] #2 (hit_rate@10): max_absolute_drop = "2%": an absolute drop is a '
        "difference in the metric's own units, not a percentage; write it without % (or give "
        "max_relative_drop for a relative drop)",
    ),
    (
        _edit("seed = 2 }", "seed = 2, lift = 20 }"),
        "[data.simulate] lift = 20: a relative lift is a fraction; did you mean 0.2 (+20%)? "
        'Write 0.2 or "20%"',
    ),
    (
        _edit('model = "als"', 'model = "ALSS"'),
        "[models.als] unknown model 'ALSS' (did you mean 'als'?); expected one of: als,",
    ),
    (_edit("alpha = 0.1", "alpha = 0.6"), "[gate] alpha must be between 0 and 0.5, got 0.6"),
    (_edit("alpha = 0.1", 'alpha = "0.1"'), "[gate] alpha must be a number, got '0.1'"),
    (
        _edit("alpha = 0.1", 'alpha = 0.1\ntest = "z"'),
        "[gate] unknown test 'z'; expected one of: bootstrap, t",
    ),
    (
        VALID.split("[[gate.checks]]")[0],
        "[gate] declares no checks; add [[gate.checks]] with metric and max_relative_drop",
    ),
    # data, split, simulator settings, compare
    (_edit('dataset = "sim"\n', ""), "missing key 'dataset' in [data]"),
    (
        _edit('split = "temporal"', 'split = "random"'),
        "[data] split: --split: unknown split 'random'",
    ),
    (_edit("users = 300", "users = 1"), "[data.simulate]: users must be at least 2, got 1"),
    (
        _edit('reference = "pop"', 'reference = "popp"'),
        "[compare] reference: unknown model label 'popp' (did you mean 'pop'?)",
    ),
    (
        _edit("n_resamples = 500", "n_resamples = 50"),
        "[compare] n_resamples must be 0 or at least 100, got 50",
    ),
    ("[data\n", "invalid TOML"),
    ("models = 3\n", 'missing table [data] (at least: dataset = "NAME")'),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_invalid_specs(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SpecError, match=re.escape(f"{path}: {message}")):
        load_spec(path)


def test_missing_and_directory_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=re.escape(f"{tmp_path / 'x.toml'}: no such spec file")):
        load_spec(tmp_path / "x.toml")
    with pytest.raises(SpecError, match=re.escape("is a directory, expected a .toml spec file")):
        load_spec(tmp_path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text: byte 0 is 0x89"),
        (b'name = "x"\n\xff', "not UTF-8 text: byte 11 is 0xff"),
        (b"\x00\x00\x00\x01 abc", "a binary file: it holds NUL bytes"),
    ],
)
def test_binary_file_is_not_a_spec(tmp_path: Path, content: bytes, reason: str) -> None:
    """Used to raise UnicodeDecodeError (a traceback) from tomllib."""
    path = tmp_path / "some.bin"
    path.write_bytes(content)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value) == (
        f"{path}: not a TOML spec ({reason}); give an experiment spec such as experiments/ci.toml"
    )


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_spec(path).name == "t"
