"""Compare two JSON documents: same structure and strings, every number equal to 1e-9."""

from __future__ import annotations

import math
from typing import Any


def assert_json_close(a: Any, b: Any, *, rel: float = 1e-9, path: str = "$") -> None:
    """Every number of ``a`` equals ``b``'s to ``rel`` (relative, or absolute near 0)."""
    if isinstance(a, dict):
        assert isinstance(b, dict), path
        assert sorted(a) == sorted(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_json_close(a[key], b[key], rel=rel, path=f"{path}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list), path
        assert len(a) == len(b), f"{path}: {len(a)} != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_json_close(x, y, rel=rel, path=f"{path}[{i}]")
    elif isinstance(a, bool) or a is None or isinstance(a, str):
        assert a == b, f"{path}: {a!r} != {b!r}"
    elif isinstance(a, int | float):
        assert isinstance(b, int | float), f"{path}: {b!r}"
        assert not isinstance(b, bool), f"{path}: {b!r}"
        if math.isnan(a) or math.isnan(b):
            assert math.isnan(a), f"{path}: {a} != {b}"
            assert math.isnan(b), f"{path}: {a} != {b}"
        else:
            assert math.isclose(a, b, rel_tol=rel, abs_tol=rel), f"{path}: {a} != {b}"
    else:  # pragma: no cover
        raise AssertionError(f"{path}: unexpected {type(a).__name__}")
