"""Sphinx configuration of the sklearn-autodecoder documentation.

Build with ``make -C docs html`` (or ``sphinx-build -W -b html docs docs/_build/html``).
The build needs no network and the site reads nothing from the network: there
is no intersphinx, the gallery examples run on data scikit-learn ships
(``MNIST10K`` switches them to MNIST files), and MathJax is served from the
site itself (sphinx-mathjax-offline), not from a CDN.
"""

import importlib
import inspect
import linecache
import os
import pkgutil
import re
import sys
import warnings
from pathlib import Path

from sphinx.util import logging

HERE = Path(__file__).resolve().parent
# Document the checkout's package even when another copy is installed.
sys.path.insert(0, str(HERE.parent))

import sklearn_autodecoder  # noqa: E402

project = "sklearn-autodecoder"
author = "the sklearn-autodecoder developers"
copyright = "the sklearn-autodecoder developers"
release = sklearn_autodecoder.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "sphinx_design",
    # Copies MathJax into _static/mathjax and points mathjax_path at it, so
    # formulas render offline. (The module's name has hyphens.)
    "sphinx-mathjax-offline",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# `x` in docstrings is code, as in scikit-learn's docs.
default_role = "literal"
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "**.md5"]

# -- API reference -----------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"
# The page's table of contents lists methods as "fit()", not "AutoDecoder.fit()".
toc_object_entries_show_parents = "hide"
# numpydoc renders the sections; the methods summary table comes from the
# autosummary class template, _templates/class.rst (as in scikit-learn), not
# from numpydoc's member tables.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- Markdown (MyST) ---------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- Gallery -----------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Run every plot_*.py; helper modules (_*.py) are neither run nor shown.
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(^|[/\\])_",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("sklearn_autodecoder",),
    "backreferences_dir": "generated/backreferences",
    "remove_config_comments": True,
    # Examples print what they report; no repr of a cell's last expression.
    "capture_repr": (),
    "show_memory": False,
    "plot_gallery": "True",
    "abort_on_example_error": True,
    # The execution-time pages load DataTables from a CDN; the site stays offline.
    "write_computation_times": False,
}

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-autodecoder {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navbar_align": "left",
    "show_prev_next": False,
    "navigation_with_keys": False,
    # Gallery pages give the code the width of the in-page table of contents.
    "secondary_sidebar_items": {
        "*": ["page-toc"],
        "generated/*": ["page-toc"],
        "auto_examples/*": [],
    },
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_sidebars = {"index": [], "changelog": []}
html_show_sourcelink = False

# Examples run headless.
os.environ.setdefault("MPLBACKEND", "Agg")


# Warnings that an example prints show up on its page: name the file by its
# path inside its package ("sklearn_autodecoder/_inference.py"), not by where
# the build machine keeps it.
def _short_path(filename):
    path = os.path.abspath(filename)
    roots = [os.path.abspath(entry) for entry in sys.path if entry and os.path.isdir(entry)]
    roots = [root for root in roots if path.startswith(root + os.sep)]
    if not roots:
        return os.path.basename(path)
    return os.path.relpath(path, max(roots, key=len))


_formatwarning = warnings.formatwarning


def _format_warning_short_path(message, category, filename, lineno, line=None):
    if line is None:
        line = linecache.getline(filename, lineno)
    return _formatwarning(message, category, _short_path(filename), lineno, line)


warnings.formatwarning = _format_warning_short_path
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg",
                        category=UserWarning)
warnings.filterwarnings("ignore", message="FigureCanvasAgg is non-interactive",
                        category=UserWarning)


# -- API completeness --------------------------------------------------------
def _public_names(module):
    """A module's ``__all__``, or its own public classes and functions."""
    if hasattr(module, "__all__"):
        return {name for name in module.__all__ if name != "__version__"}
    return {
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and obj.__module__ == module.__name__
    }


# Command-line scripts, not library API.
_NOT_API_MODULES = {"sklearn_autodecoder.demo"}


def _check_api_reference(app):
    """Warn (an error under -W) when a public name is missing from api.rst.

    Every public submodule of the package must have a ``currentmodule``
    section in api.rst, and each section must list its module's public names.
    """
    logger = logging.getLogger(__name__)
    text = (HERE / "api.rst").read_text()
    listed, module = {}, None
    for line in text.splitlines():
        match = re.match(r"\.\. currentmodule:: (\S+)", line.strip())
        if match:
            module = match.group(1)
            listed.setdefault(module, set())
        elif module and re.match(r"^   [A-Za-z_][\w.]*$", line):
            listed[module].add(line.strip())
    package = sklearn_autodecoder.__name__
    modules = [package] + [
        f"{package}.{info.name}"
        for info in pkgutil.iter_modules(sklearn_autodecoder.__path__)
        if not info.name.startswith("_")
    ]
    for name in modules:
        if name in _NOT_API_MODULES:
            continue
        missing = _public_names(importlib.import_module(name)) - listed.get(name, set())
        if missing:
            names = ", ".join(sorted(missing))
            logger.warning("api.rst does not list %s from %s", names, name)


# -- Links to scikit-learn without intersphinx ---------------------------------
# Docstrings use scikit-learn's conventions (:term:`fit`, :class:`~sklearn.x.Y`).
# Intersphinx would fetch scikit-learn's inventory over the network; instead an
# unresolved reference to a glossary term, a ``sklearn.`` object or a label in
# an inherited scikit-learn docstring becomes a plain link to scikit-learn's
# site. Any other unresolved reference still warns.
SKLEARN_URL = "https://scikit-learn.org/stable/"


def _link_to_sklearn(app, env, node, contnode):
    from docutils import nodes

    target = node.get("reftarget", "")
    # Inherited methods (get_params, set_output, ...) bring scikit-learn's own
    # docstrings, whose :ref: labels live in scikit-learn's documentation.
    in_sklearn_docstring = "docstring of sklearn." in str(node.source)
    if node.get("reftype") == "ref" and in_sklearn_docstring:
        if target.startswith("sphx_glr_auto_examples_"):
            example = target.removeprefix("sphx_glr_auto_examples_").removesuffix(".py")
            folder, _, name = example.partition("_plot_")
            uri = f"{SKLEARN_URL}auto_examples/{folder}/plot_{name}.html"
        else:
            uri = f"{SKLEARN_URL}search.html?q={target}"
    elif node.get("reftype") == "term":
        anchor = "term-" + re.sub(r"[^\w]+", "-", target.lower()).strip("-")
        uri = f"{SKLEARN_URL}glossary.html#{anchor}"
    elif node.get("refdomain") == "py" and target.startswith("sklearn."):
        parts = target.split(".")
        if len(parts) > 3 and parts[-2][:1].isupper():  # a method: its class's page
            uri = f"{SKLEARN_URL}modules/generated/{'.'.join(parts[:-1])}.html#{target}"
        else:
            uri = f"{SKLEARN_URL}modules/generated/{target}.html"
    else:
        return None
    reference = nodes.reference("", "", internal=False, refuri=uri, reftitle=target)
    reference.append(contnode)
    return reference


def setup(app):
    app.connect("builder-inited", _check_api_reference)
    app.connect("missing-reference", _link_to_sklearn)
