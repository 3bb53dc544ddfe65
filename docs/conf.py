"""Sphinx configuration of the sk-cotuning documentation.

Build locally (warnings are errors, the gallery executes):

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import os
import sys
import warnings

sys.path.insert(0, os.path.abspath(".."))

import sk_cotuning  # noqa: E402

project = "sk-cotuning"
author = "sk-cotuning developers"
copyright = "2026, sk-cotuning developers"
version = release = sk_cotuning.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
# no intersphinx: the build must work offline
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
templates_path = ["_templates"]
exclude_patterns = ["_build", "generated/*.examples", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.json",
                    "auto_examples/*.md5", "sg_execution_times.rst"]
html_theme = "pydata_sphinx_theme"
html_title = "sk-cotuning"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path = []

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "show_memory": False,
    "matplotlib_animations": False,
    "abort_on_example_error": True,
    "within_subsection_order": "FileNameSortKey",
    "write_computation_times": False,
}

warnings.filterwarnings("ignore", category=UserWarning, message=".*weights=None.*")
warnings.filterwarnings("ignore", message=".*Matplotlib is currently using agg.*")
