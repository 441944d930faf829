"""The package stays easy to read: no very long module without a stated reason, and no block of
code written twice."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "scaleset_operator"
MAX_LINES = 400
# A longer module says why in a comment among its first lines: "# Long module: <reason>".
LONG_MARK = "# Long module:"
WINDOW = 6
# Windows this short are closing brackets and argument lists, not logic written twice.
MIN_WINDOW_CHARS = 120


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_package_is_where_this_test_looks() -> None:
    assert (PACKAGE / "__init__.py").exists()
    assert len(_modules()) > 20


def test_long_modules_say_why() -> None:
    unexplained = []
    for path in _modules():
        lines = path.read_text().splitlines()
        if len(lines) <= MAX_LINES:
            continue
        reasons = [line for line in lines[:30] if line.startswith(LONG_MARK)]
        if not reasons or len(reasons[0]) - len(LONG_MARK) < 20:
            unexplained.append(f"{path.relative_to(PACKAGE)} ({len(lines)} lines)")
    assert not unexplained, f"over {MAX_LINES} lines without '{LONG_MARK} <reason>': {unexplained}"


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines that carry code: no blanks, comments or imports (those repeat by nature)."""
    out = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith(("#", "import ", "from ")):
            out.append((number, line))
    return out


def test_no_block_of_six_lines_is_written_twice() -> None:
    first_seen: dict[tuple[str, ...], tuple[Path, int]] = {}
    repeats: dict[tuple[Path, Path], list[str]] = defaultdict(list)
    for path in _modules():
        lines = _code_lines(path)
        for start in range(len(lines) - WINDOW + 1):
            window = lines[start : start + WINDOW]
            text = tuple(line for _, line in window)
            if sum(map(len, text)) < MIN_WINDOW_CHARS:
                continue
            where = (path, window[0][0])
            earlier = first_seen.setdefault(text, where)
            if earlier == where or (earlier[0] == path and window[0][0] - earlier[1] < WINDOW):
                continue
            repeats[(earlier[0], path)].append(
                f"{earlier[0].relative_to(PACKAGE)}:{earlier[1]} = "
                f"{path.relative_to(PACKAGE)}:{window[0][0]}"
            )
    found = [places[0] for places in repeats.values()]
    assert not found, f"blocks of {WINDOW}+ lines written twice: {found}"


def test_test_modules_have_unique_names() -> None:
    # Test folders are not packages, so pytest imports each module by its file name: two files
    # of one name make the whole run fail at collection.
    tests = PACKAGE.parents[1] / "tests"
    names: dict[str, list[str]] = defaultdict(list)
    for path in tests.rglob("test_*.py"):
        names[path.name].append(str(path.relative_to(tests)))
    assert not {k: v for k, v in names.items() if len(v) > 1}
