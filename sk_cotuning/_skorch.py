"""The skorch internals sk-cotuning relies on, in one place.

Supported: skorch >= 1.2, < 2 (``pyproject.toml``; CI runs
``tests/test_skorch_compat.py`` on the oldest, 1.2.0, and on the newest
installed).  Everything here works around one skorch behaviour, named in its
docstring, and has a test in ``tests/test_skorch_compat.py`` that fails if
skorch changes it.  The estimators use skorch's documented hooks
(``initialize_module``, ``get_loss``, ``get_dataset``, ``get_iterator``,
callbacks) for everything else.

The package writes an attribute past ``__setattr__`` only here, once:
:func:`store_raw`.  Module-valued parameters need no such write: the
estimator declares them in ``prefixes_`` (skorch's documented attribute),
which its ``__setattr__`` leaves plain.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

__all__ = [
    "SKORCH_REQUIREMENT",
    "mark_for_validation",
    "only_trainable_criteria",
    "store_raw",
    "temporary_attribute",
]

#: The skorch versions the package supports (also in ``pyproject.toml``).
SKORCH_REQUIREMENT = "skorch>=1.2,<2"


def store_raw(obj: Any, name: str, value: Any) -> None:
    """Write ``obj.__dict__[name]`` past a data descriptor of the same name.

    The ``device`` parameter is a property (skorch reads ``net.device`` as
    its working device; the property resolves ``"auto"``), while the value
    the user set lives in the instance dictionary under the same name, where
    skorch's ``_get_param_names`` (the keys of ``__dict__``), pickling and
    ``clone`` find it.
    """
    vars(obj)[name] = value


@contextmanager
def temporary_attribute(net: Any, name: str, value: Any) -> Iterator[None]:
    """Set ``net.<name>`` for the duration of the block (it must be unset before).

    skorch's ``get_iterator`` (1.2-1.4) reads DataLoader arguments only from
    the ``iterator_train__*`` attributes; a one-off argument (``drop_last``
    for one epoch's batches) is set around the call.
    """
    setattr(net, name, value)
    try:
        yield
    finally:
        delattr(net, name)


def mark_for_validation(net: Any, key: str) -> None:
    """Add a prefixed key to the ones skorch validates at ``initialize``.

    skorch's ``set_params`` records ``<prefix>__<name>`` keys in the private
    set ``_params_to_validate`` (1.2-1.4); keys the estimator stores itself
    (past skorch's ``set_params``) are added alike, so a typo is still reported.
    """
    net._params_to_validate.add(key)


@contextmanager
def only_trainable_criteria(net: Any) -> Iterator[None]:
    """Let skorch see only the criteria with trainable parameters inside the block.

    ``AccelerateMixin._initialize_accelerator`` (skorch 1.2-1.4) passes every
    criterion in the private list ``_criteria`` to ``accelerator.prepare``,
    which, with several processes, wraps it in ``DistributedDataParallel``;
    that refuses a module without trainable parameters (``CrossEntropyLoss``),
    and such a criterion needs no preparing.
    """
    kept = net._criteria
    trainable = [name for name in kept
                 if any(p.requires_grad for p in getattr(getattr(net, name + "_"), "parameters", list)())]
    net._criteria = trainable
    try:
        yield
    finally:
        net._criteria = kept
