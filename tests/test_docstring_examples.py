"""The numpydoc ``Examples`` sections run, and print what they show."""

import doctest
import importlib
import pkgutil

import pytest

import sk_cotuning


def modules_with_examples():
    names = []
    for info in pkgutil.walk_packages(sk_cotuning.__path__, "sk_cotuning."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra (accelerate, dask) that is not installed
            continue
        if any(test.examples for test in doctest.DocTestFinder().find(module)):
            names.append(info.name)
    return names


MODULES = modules_with_examples()


def test_the_examples_are_found():
    assert {"sk_cotuning.relationship", "sk_cotuning.transferability"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
