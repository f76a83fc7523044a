"""Every Python snippet of README.md and docs/*.md runs.

Each page's ```python blocks run in order in one namespace, as a reader
would paste them into one session, in a temporary working directory. A
block that needs what a test machine lacks (MNIST or STL-10 files, a dask
scheduler, torchrun) says so on its first line, visibly on the page::

    # skipped by the docs tests: <reason>

and is left out; every other block must run. To keep the whole test near a
minute on two CPU cores, the estimators' *default* number of epochs is
lowered while the snippets run (a value a snippet writes, such as
``max_iter=150``, is kept): the test checks that the code runs as written,
not what it learns, which the package's own tests and benchmarks measure.
"""

import re
import sys
import warnings
from pathlib import Path

import pytest

import sklearn_autodecoder

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^```\s*$", re.S | re.M)
SKIP = re.compile(r"skipped by the docs tests: (?P<reason>\S.*)")
# A block whose first line names a module file (``# my_models.py: ...``) is that
# file: it is written to the working directory, importable by the next blocks.
MODULE_FILE = re.compile(r"^#\s*(?P<file>[A-Za-z_]\w*\.py)\b")
# Default epochs while the snippets run (see the module docstring).
SNIPPET_MAX_ITER = 3
ESTIMATORS = ("AutoDecoder", "ConvAutoDecoder", "AutoEncoder", "ConvAutoEncoder")


def python_blocks(page):
    """``(line number, code)`` of each ```python block of a page."""
    text = page.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start()) + 1, match["code"])
        for match in FENCE.finditer(text)
        if match["lang"] in ("python", "py")
    ]


def module_file(code):
    """The file name a block says it is on its first line, or None."""
    match = MODULE_FILE.match(code.lstrip())
    return match["file"] if match else None


def skip_reason(code):
    """The reason a block gives on its first line for not being run, or None."""
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    match = SKIP.search(first) if first.startswith("#") else None
    return match["reason"].rstrip(")").strip() if match else None


@pytest.fixture
def short_default_fits(monkeypatch):
    """Lower the estimators' default ``max_iter``; explicit values are kept."""
    for name in ESTIMATORS:
        defaults = getattr(sklearn_autodecoder, name).__init__.__kwdefaults__
        monkeypatch.setitem(defaults, "max_iter", SNIPPET_MAX_ITER)


def test_the_pages_have_snippets():
    assert (ROOT / "README.md") in PAGES and len(PAGES) > 5
    runnable = [code for page in PAGES for _, code in python_blocks(page) if skip_reason(code) is None]
    assert len(runnable) >= 5


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_snippets_run(page, tmp_path, monkeypatch, short_default_fits):
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip("no python block")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__doc_snippet__"}
    ran = 0
    for line, code in blocks:
        if skip_reason(code) is not None:
            continue
        name = f"{page.relative_to(ROOT)}, block at line {line}"
        if module_file(code):
            (tmp_path / module_file(code)).write_text(code, encoding="utf-8")
            monkeypatch.delitem(sys.modules, module_file(code)[:-3], raising=False)
            continue
        with warnings.catch_warnings():
            # Short fits stop before converging: that warning is the test's doing.
            warnings.filterwarnings("ignore", message="Training stopped at max_iter")
            try:
                exec(compile(code, name, "exec"), namespace)
            except Exception as error:
                raise AssertionError(f"{name} fails:\n{code}") from error
        ran += 1
    if not ran:
        pytest.skip("every python block is marked as skipped")


def test_skipped_snippets_say_why():
    marked = [code for page in PAGES for _, code in python_blocks(page) if "skipped by the docs" in code]
    assert marked, "the MNIST snippets should be marked"
    for code in marked:
        assert skip_reason(code), f"a skip marker without a reason, or not on the first line:\n{code}"


def test_fence_parser_finds_blocks_and_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n\n"
        "```python\n# skipped by the docs tests: needs MNIST\nload()\n```\n",
        encoding="utf-8",
    )
    blocks = python_blocks(page)
    assert [line for line, _ in blocks] == [3, 11]
    assert [skip_reason(code) for _, code in blocks] == [None, "needs MNIST"]


def test_module_file_blocks_are_recognised():
    assert module_file("# my_models.py: the class must be importable\nclass A: ...") == "my_models.py"
    assert module_file("# a comment about x.py\nx = 1") is None
    assert module_file("x = 1  # my_models.py") is None
