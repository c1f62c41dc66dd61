"""``abkit replay --policy-file``: files that are not a policy abkit can evaluate are refused
by the CLI with one exact line on stderr and exit code 2 (no traceback, no warning, none of the
file's bytes), and the store is left byte for byte as it was. The format is told by the file's
first bytes, not its name; a plain ``.npy`` array is read as ``action_dist``."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from abkit.cli.main import app
from abkit.data.ingest import ingest_file
from abkit.replay.offpolicy import estimate_policy_value
from abkit.replay.runner import replay
from tests.conftest import OBD, file_digest

SOURCE = OBD / "random" / "men"
ROWS = 400  # rounds: a cut of the log keeps the dense files small
SAVE = "save it with numpy.savez(FILE, action_dist=array)"
RANGE = "every probability must lie in [0, 1]"


@pytest.fixture(scope="module")
def men(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A store holding the first ROWS rows of the Men's random log, and its catalogue size."""
    folder = tmp_path_factory.mktemp("obd-cut") / "random" / "men"
    folder.mkdir(parents=True)
    frame = pd.read_csv(SOURCE / "men.csv.gz", index_col=0).head(ROWS)
    frame.to_csv(folder / "men.csv.gz", compression="gzip")
    shutil.copy(SOURCE / "item_context.csv.gz", folder / "item_context.csv.gz")
    db = tmp_path_factory.mktemp("obd-refusals") / "obd.duckdb"
    ingest_file(folder / "men.csv.gz", db, preset="obd")
    assert len(frame) == ROWS
    return db, int(frame["item_id"].max()) + 1


def _uniform(items: int, rounds: int = ROWS) -> np.ndarray:
    return np.full((rounds, items, 3), 1.0 / items)


def _long(items: int) -> pd.DataFrame:
    """The uniform policy in the long layout, one row per (round, item, position)."""
    return pd.DataFrame(
        [(r, i, p, 1.0 / items) for r in range(ROWS) for i in range(items) for p in (1, 2, 3)],
        columns=["round", "item", "position", "probability"],
    )


# Each case: a file name, what writes it (given the path and the catalogue size), and the one
# line expected after "error: --policy-file PATH: " ({items} and {rounds} are filled in).
Writer = Callable[[Path, int], None]


def _complex(path: Path, items: int) -> None:
    np.savez(path, action_dist=_uniform(items).astype(np.complex128))


def _strings(path: Path, items: int) -> None:
    np.savez(path, action_dist=np.full((ROWS, items, 3), "0.5"))


def _bytes_array(path: Path, items: int) -> None:
    np.savez(path, action_dist=np.full((ROWS, items, 3), b"0.5"))


def _items_short(path: Path, items: int) -> None:  # 79 of 80 (here: one item short)
    np.savez(path, action_dist=_uniform(items - 1))


def _items_long(path: Path, items: int) -> None:
    np.savez(path, action_dist=_uniform(items + 1))


def _npy_items_short(path: Path, items: int) -> None:
    np.save(path, _uniform(items - 1))


def _wrong_name(path: Path, items: int) -> None:
    np.savez(path, dist=_uniform(items))


def _two_wrong_names(path: Path, items: int) -> None:
    np.savez(path, a=_uniform(items), item_ids=np.arange(items).astype(str))


def _empty_npz(path: Path, items: int) -> None:
    np.savez(path)


def _npy_complex(path: Path, items: int) -> None:
    np.save(path, _uniform(items).astype(np.complex64))


def _npy_2d(path: Path, items: int) -> None:
    np.save(path, np.full((ROWS, items), 1.0 / items))


def _npy_objects(path: Path, items: int) -> None:
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)


def _pickle(path: Path, items: int) -> None:
    path.write_bytes(pickle.dumps(_uniform(items), protocol=pickle.HIGHEST_PROTOCOL))


def _pickle_protocol_2(path: Path, items: int) -> None:
    path.write_bytes(pickle.dumps({"action_dist": _uniform(items)}, protocol=2))


def _binary(path: Path, items: int) -> None:
    path.write_bytes(bytes(range(256)) * 4)


def _not_an_array(path: Path, items: int) -> None:  # a zip whose action_dist is not .npy
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("action_dist", b"\x00\x01\x02 not an array")


def _truncated_npy(path: Path, items: int) -> None:
    np.save(path, _uniform(items))
    path.write_bytes(path.read_bytes()[:300])


def _nan_npz(path: Path, items: int) -> None:
    dist = _uniform(items)
    dist[0, 1, 2] = np.nan
    np.savez(path, action_dist=dist)


def _nan_csv(path: Path, items: int) -> None:  # pandas writes NaN as an empty cell
    frame = _long(items)
    frame.loc[5, "probability"] = np.nan  # data row 6: line 7 after the header
    frame.to_csv(path, index=False)


def _nan_literal_csv(path: Path, items: int) -> None:
    path.write_text("item,position,probability\n0,1,0.5\n1,1,NaN\n")


def _inf_csv(path: Path, items: int) -> None:
    path.write_text("item,position,Probability\n0,1,0.5\n1,1,inf\n")


def _empty_item_csv(path: Path, items: int) -> None:
    path.write_text("round,item,position,probability\n0,0,1,0.5\n0,,1,0.5\n")


def _nan_parquet(path: Path, items: int) -> None:
    frame = _long(items)
    frame.loc[5, "probability"] = np.nan
    frame.to_parquet(path)


CASES: list[tuple[str, str, Writer, str]] = [
    (
        "complex-npz",
        "pi.npz",
        _complex,
        "action_dist has dtype complex128; expected real probabilities (float)",
    ),
    (
        "string-npz",
        "pi.npz",
        _strings,
        "action_dist has dtype <U3; expected real probabilities (float)",
    ),
    (
        "bytes-npz",
        "pi.npz",
        _bytes_array,
        "action_dist has dtype |S3; expected real probabilities (float)",
    ),
    (
        "items-short-npz",
        "pi.npz",
        _items_short,
        "action_dist has shape ({rounds}, {short}, 3), expected ({rounds}, {items}, 3) "
        "(rounds x items x positions, the catalogue's {items} items; an .npz for some of them "
        "names them in an item_ids array)",
    ),
    (
        "items-long-npz",
        "pi.npz",
        _items_long,
        "action_dist has shape ({rounds}, {long}, 3), expected ({rounds}, {items}, 3) "
        "(rounds x items x positions, the catalogue's {items} items; an .npz for some of them "
        "names them in an item_ids array)",
    ),
    (
        "items-short-npy",
        "pi.npy",
        _npy_items_short,
        "the array has shape ({rounds}, {short}, 3), expected ({rounds}, {items}, 3) "
        "(rounds x items x positions, the catalogue's {items} items)",
    ),
    (
        "wrong-name",
        "pi.npz",
        _wrong_name,
        f"expected an array named action_dist; the file holds dist; {SAVE}",
    ),
    (
        "wrong-names",
        "pi.npz",
        _two_wrong_names,
        f"expected an array named action_dist; the file holds a, item_ids; {SAVE}",
    ),
    (
        "empty-npz",
        "pi.npz",
        _empty_npz,
        f"the .npz file holds no arrays; expected one named action_dist; {SAVE}",
    ),
    (
        "not-an-array",
        "pi.npz",
        _not_an_array,
        f"action_dist is not a NumPy array; {SAVE}",
    ),
    (
        "complex-npy",
        "pi.npy",
        _npy_complex,
        "the array has dtype complex64; expected real probabilities (float)",
    ),
    (
        "2d-npy",
        "pi.npy",
        _npy_2d,
        "the array has shape ({rounds}, {items}); expected rounds x items x positions "
        "({rounds}, {items}, 3)",
    ),
    (
        "objects-npy",
        "pi.npy",
        _npy_objects,
        "the file holds Python objects; abkit reads plain arrays only",
    ),
    (
        "truncated-npy",
        "pi.npy",
        _truncated_npy,
        r"not a readable \.npy file \(Failed to read all data for array\. .*\)",
    ),
    (
        "pickle",
        "pi.pkl",
        _pickle,
        "abkit does not load pickles (loading one can run arbitrary code); save the array "
        "with numpy.savez(FILE, action_dist=array)",
    ),
    (
        "pickle-named-npz",
        "pi.npz",
        _pickle_protocol_2,
        "abkit does not load pickles (loading one can run arbitrary code); save the array "
        "with numpy.savez(FILE, action_dist=array)",
    ),
    (
        "binary",
        "pi.csv",
        _binary,
        "binary content that abkit does not read as a policy; expected an .npz or .npy file "
        "(action_dist), a Parquet file or a UTF-8 CSV",
    ),
    ("nan-npz", "pi.npz", _nan_npz, f"action_dist[0, 1, 2] is NaN; {RANGE}"),
    ("nan-csv", "pi.csv", _nan_csv, "line 7, column probability is empty (missing or NaN)"),
    ("nan-literal-csv", "pi.csv", _nan_literal_csv, f"line 3, column probability is NaN; {RANGE}"),
    ("inf-csv", "pi.csv", _inf_csv, f"line 3, column Probability is inf; {RANGE}"),
    ("empty-item-csv", "pi.csv", _empty_item_csv, "line 3, column item is empty"),
    (
        "nan-parquet",
        "pi.parquet",
        _nan_parquet,
        "row 6, column probability is empty (missing or NaN)",
    ),
]

# messages given as a regular expression (the rest are matched as the whole literal line)
PATTERNS = {"truncated-npy"}


@pytest.mark.filterwarnings("error")  # a warning (numpy's ComplexWarning, say) fails the row
@pytest.mark.parametrize(
    ("name", "write", "expected"),
    [pytest.param(name, write, expected, id=case) for case, name, write, expected in CASES],
)
def test_bad_policy_file_is_refused_with_one_line(
    men: tuple[Path, int],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    name: str,
    write: Writer,
    expected: str,
) -> None:
    db, items = men
    path = tmp_path / name
    write(path, items)
    case = request.node.callspec.id
    shapes = {"rounds": ROWS, "items": items, "short": items - 1, "long": items + 1}
    before = file_digest(db)
    ran = CliRunner().invoke(
        app, ["replay", "--db", str(db), "--policy-file", str(path), "--estimator", "ips,dr"]
    )
    assert ran.exit_code == 2, ran.output
    assert ran.stdout == ""
    lines = ran.stderr.splitlines()
    assert len(lines) == 1, ran.stderr  # no warning line, no traceback
    prefix = f"error: --policy-file {path}: "
    assert lines[0].startswith(prefix), lines[0]
    if case in PATTERNS:
        assert re.fullmatch(expected, lines[0][len(prefix) :]), lines[0]
    else:
        assert lines[0] == prefix + expected.format(**shapes)
    assert "Traceback" not in ran.output
    assert all(" " <= ch <= "~" for ch in lines[0]), lines[0]  # printable ASCII: no bytes
    assert file_digest(db) == before


def test_a_plain_npy_array_is_read_as_action_dist(men: tuple[Path, int], tmp_path: Path) -> None:
    """``numpy.save(FILE, action_dist)`` gives the same estimates as the ``.npz`` (loaded
    without pickle); ``.npz`` entries for a subset of the items, named by ``item_ids``, are
    accepted, the items left out having probability 0."""
    db, items = men
    rng = np.random.default_rng(5)
    dist = rng.dirichlet(np.full(items, 0.5), size=(ROWS, 3)).transpose(0, 2, 1)
    np.save(tmp_path / "pi.npy", dist)
    np.savez(tmp_path / "pi.npz", action_dist=dist)
    a = replay(db, policy_file=tmp_path / "pi.npy", estimators="ips,snips", write=False)
    b = replay(db, policy_file=tmp_path / "pi.npz", estimators="ips,snips", write=False)
    assert json.loads(a.params_json)["layout"] == "obp"
    assert [e.value for e in a.estimates] == [e.value for e in b.estimates]
    some = np.full((ROWS, items - 1, 3), 1.0 / (items - 1))
    np.savez(tmp_path / "some.npz", action_dist=some, item_ids=np.arange(1, items).astype(str))
    assert replay(db, policy_file=tmp_path / "some.npz", estimators="ips", write=False).estimates


def test_cli_reports_a_clipped_dr_with_its_unclipped_value(
    men: tuple[Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DR estimate below the reward's range is shown as 0 (its interval's end) in the table,
    with one note line giving the formula's own value; ``--json`` carries both."""
    db, items = men
    path = tmp_path / "pi.npz"
    np.savez(path, action_dist=_uniform(items))
    result = replay(db, policy_file=path, estimators="dr", write=False)
    r, mu = np.zeros(8), np.full(8, 0.5)
    pi = np.repeat([1.0, 0.0], 4)
    dr = estimate_policy_value(
        r, mu, pi, estimator="dr", q_logged=np.full(8, 0.4), q_policy=np.full(8, 0.05),
        min_ess=1,
    )  # fmt: skip
    assert dr.raw_value == pytest.approx(-0.35)
    clipped = dataclasses.replace(result, estimates=(dr,))
    monkeypatch.setattr("abkit.cli.replay.replay", lambda *args, **kwargs: clipped)
    args = ["replay", "--db", str(db), "--policy-file", str(path), "--estimator", "dr"]
    ran = CliRunner().invoke(app, args)
    assert ran.exit_code == 0, ran.output
    rows = [line for line in ran.stdout.splitlines() if line.lstrip().startswith("dr ")]
    assert len(rows) == 1, ran.stdout
    assert "clipped [1]" in rows[0], ran.stdout
    assert rows[0].split("│")[1].strip() == "0.0000", rows[0]
    notes = [line for line in ran.stdout.splitlines() if line.startswith("[1] ")]
    assert notes == [
        "[1] dr's own value -0.3500 lies below the reward's range; shown clipped to 0, like "
        "its interval (value_unclipped in --json)"
    ]
    payload = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)["estimates"]["dr"]
    assert payload["value"] == 0.0 == payload["ci"][0]
    assert payload["value_unclipped"] == pytest.approx(-0.35)
