"""What a regulariser is: declared needs, a one-off preparation, named loss terms.

A regulariser adds terms to the fine-tuning loss.  It is an ``nn.Module``
held by the network (:class:`~sk_cotuning.network.FineTuningNetwork`), so its
prepared state (buffers) and learnable parameters travel with the network:
through ``save_params``/``load_params``, ``Checkpoint``/``LoadInitState``,
pickling, device moves and data-parallel wrappers; its parameters reach the
optimiser through skorch's ``get_all_learnable_params``.

The estimator calls, in order:

1. ``bind(n_classes, n_source, n_features)`` once, when the network is built,
   to allocate buffers of the right shapes (so a saved state loads back),
   then ``attach(network)`` once the network holds it (a regulariser that
   reads parameters or intermediate feature maps keeps a reference there,
   takes a frozen pre-trained copy, or registers forward hooks);
2. ``prepare(net, dataset)`` once per fresh fit, from the
   :class:`~sk_cotuning.callbacks.PrepareRegularizer` callback, on the
   training split and the still pre-trained network; skipped when the
   ``prepared`` buffer says a restored checkpoint already holds the result;
3. ``forward(outputs, y)`` in ``get_loss`` for every batch, returning
   :class:`LossTerm` s; each is logged per epoch as ``<name>_loss``.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from sk_cotuning._validation import validate_params

__all__ = ["LossTerm", "Regularizer"]


class LossTerm(NamedTuple):
    """One named, weighted term of the loss.

    Attributes
    ----------
    name : str
        Logged in ``history`` as ``<name>_loss`` (the unweighted value).
    value : Tensor
        A scalar, unweighted.
    weight : float
        Its weight in the total loss.
    """

    name: str
    value: torch.Tensor
    weight: float


#: The network outputs a regulariser may name in ``needs``
#: (:class:`~sk_cotuning.network.NetworkOutput`'s fields).
OUTPUT_FIELDS = frozenset({"target", "source", "features"})


def check_declarations(regularizer: "Regularizer") -> None:
    """Check a regulariser's class-level protocol: ``terms`` and ``needs``.

    Raises ``TypeError``/``ValueError`` naming the class and what to write,
    when the estimator builds it (a typo in ``needs`` would otherwise leave
    the source head unevaluated, and ``needs="source"`` would be read as a
    set of letters).
    """
    owner = type(regularizer).__name__
    terms, needs = regularizer.terms, regularizer.needs
    if not isinstance(terms, (tuple, list)) or not all(isinstance(t, str) for t in terms):
        raise TypeError(f"{owner}.terms must be a tuple of term names, e.g. ('my_term',); "
                        f"got {terms!r}.")
    if (not isinstance(needs, (frozenset, set, tuple, list))
            or not all(isinstance(n, str) for n in needs)):
        raise TypeError(f"{owner}.needs must be a set of output names, e.g. "
                        f"frozenset({{'features'}}); got {needs!r}.")
    unknown = sorted(set(needs) - OUTPUT_FIELDS)
    if unknown:
        raise ValueError(f"{owner}.needs names {unknown}, which the network does not "
                         f"output; choose from {sorted(OUTPUT_FIELDS)}.")


def checked_terms(regularizer: "Regularizer", terms: Any) -> list["LossTerm"]:
    """The terms ``regularizer.forward`` returned, checked against the protocol.

    Each must be a :class:`LossTerm` declared in ``terms``, its value a
    scalar tensor and its weight a number.  Python-level checks only (no
    device synchronisation).

    Raises
    ------
    TypeError, ValueError
        Naming the regulariser, the term and what to return instead.
    """
    owner = type(regularizer).__name__
    if isinstance(terms, LossTerm):
        raise TypeError(f"{owner}.forward returned one LossTerm; return a list of them: "
                        f"[LossTerm(name, value, weight)].")
    if not isinstance(terms, (list, tuple)):
        raise TypeError(f"{owner}.forward must return a list of LossTerm(name, value, "
                        f"weight) (an empty list for none); got {type(terms).__name__}.")
    declared = tuple(regularizer.terms)
    for term in terms:
        if not isinstance(term, LossTerm):
            raise TypeError(f"{owner}.forward returned a {type(term).__name__} in its list; "
                            f"each item must be a LossTerm(name, value, weight).")
        if term.name not in declared:
            raise ValueError(
                f"{owner} returned a loss term named {term.name!r}, but its terms "
                f"attribute declares {declared}: add the name to terms (each is logged "
                f"as <name>_loss) or return the declared names."
            )
        if not isinstance(term.value, torch.Tensor):
            raise TypeError(
                f"{owner}'s term {term.name!r} has a {type(term.value).__name__} value; it "
                f"must be a scalar tensor computed from the outputs (so that it trains the "
                f"network), e.g. outputs.features.pow(2).mean()."
            )
        if term.value.numel() != 1:
            raise ValueError(f"{owner}'s term {term.name!r} has shape "
                             f"{tuple(term.value.shape)}; it must be a scalar: reduce it, "
                             f"e.g. with .mean().")
        weight = term.weight
        if not (isinstance(weight, numbers.Real) or (
                isinstance(weight, torch.Tensor) and weight.numel() == 1)):
            raise TypeError(f"{owner}'s term {term.name!r} has weight {weight!r}; it must "
                            f"be a number.")
    return list(terms)


class Regularizer(nn.Module):
    """Base class of the fine-tuning regularisers.

    Subclasses set :attr:`terms` (the names of the loss terms they return)
    and :attr:`needs` (the network outputs they read), take their
    hyper-parameters as keyword arguments of ``__init__`` stored under the
    same names (as scikit-learn estimators do, so ``get_params``/
    ``set_params``/``clone`` and ``regularizer__<param>`` grid searches work),
    and implement :meth:`forward`.

    Attributes
    ----------
    terms : tuple of str
        Names of the loss terms, in the order :meth:`forward` returns them.
    needs : frozenset of {"source", "features"}
        Outputs of the network the loss reads; ``"source"`` makes the network
        evaluate (and, unless :attr:`trains_source_head` is false, the
        optimiser train) the source head.
    trains_source_head : bool
        Whether the source head trains when :attr:`needs` has ``"source"``
        (LWF keeps it frozen, as tllib does).
    prepared : Tensor of dtype bool, shape ()
        Buffer: whether :meth:`prepare` has run (saved with the network).
    """

    terms: ClassVar[tuple[str, ...]] = ()
    needs: ClassVar[frozenset[str]] = frozenset()
    trains_source_head: ClassVar[bool] = True
    #: The outputs :meth:`prepare` reads with ``net.collect_outputs`` (a
    #: combination collects them for all its parts in one pass).
    prepares_from: ClassVar[frozenset[str]] = frozenset()
    #: The name in ``REGULARIZERS`` (and in a combination's parameter prefixes).
    name: ClassVar[str] = "regularizer"
    #: The SGD weight decay the estimator defaults to with this method (``None``:
    #: the estimator's 5e-4).  Methods whose own terms replace weight decay
    #: (L2-SP, DELTA: ``||w - w0||^2`` is not ``||w||^2``) set 0.0, as tllib does.
    weight_decay: ClassVar[float | None] = None
    #: The hyper-parameters :meth:`prepare` reads: set on a fitted estimator,
    #: they take effect when the next ``fit`` prepares afresh (``partial_fit``
    #: refuses to go on with what was prepared under other values).
    prepared_params: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("prepared", torch.zeros((), dtype=torch.bool))

    # -------------------------------------------------------- sklearn params
    @classmethod
    def _get_param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(
            name for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ``__init__`` parameters (and, with ``deep``, nested estimators')."""
        params = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            params[name] = value
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                params.update({f"{name}__{k}": v for k, v in value.get_params().items()})
        return params

    def set_params(self, **params: Any) -> "Regularizer":
        """Set ``__init__`` parameters, or nested ones as ``<param>__<name>``."""
        valid = self._get_param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for regularizer {type(self).__name__}; "
                    f"valid parameters are {valid}."
                )
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in self._get_param_names())

    # --------------------------------------------------------------- protocol
    #: scikit-learn constraints per ``__init__`` parameter, checked by :meth:`check`.
    _parameter_constraints: ClassVar[dict] = {}

    def check(self) -> None:
        """Validate the hyper-parameters; raise ``ValueError``/``TypeError``.

        Checks ``_parameter_constraints`` the way the estimators check theirs;
        subclasses with rules across parameters extend it.
        """
        validate_params(self._parameter_constraints, self.get_params(deep=False),
                        type(self).__name__)

    def bind(self, n_classes: int, n_source: int, n_features: int) -> None:
        """Allocate state for a network of these sizes (called once, at build)."""

    def attach(self, network: nn.Module) -> None:
        """Called once the network holds this regulariser, before any device move.

        The default keeps a reference to the network (not registered as a
        submodule, so it is neither saved twice nor a cycle for
        ``named_modules``), readable as :attr:`network`.  Subclasses that
        take a frozen pre-trained copy or register forward hooks do so here,
        and call ``super().attach(network)``.

        Parameters
        ----------
        network : FineTuningNetwork
            Still holding the pre-trained weights.
        """
        self._attached_to = (network,)  # in a tuple: nn.Module does not register it

    @property
    def network(self) -> nn.Module:
        """The :class:`~sk_cotuning.network.FineTuningNetwork` this regulariser lives in."""
        attached = getattr(self, "_attached_to", None)
        if attached is None:
            raise RuntimeError(
                f"{type(self).__name__} is not attached to a network yet; the estimator "
                f"attaches it when it builds the network in fit."
            )
        return attached[0]

    def prepare(self, net: Any, dataset: torch.utils.data.Dataset) -> None:
        """Prepare once from the pre-trained network on the training split.

        Parameters
        ----------
        net : FineTuningClassifier
            The estimator; ``net.collect_outputs(dataset, field)`` runs the
            (still pre-trained) network over ``dataset`` in evaluation mode.
        dataset : Dataset
            The training split of this fit (never validation data).
        """

    def mark_prepared(self) -> None:
        """Record that :meth:`prepare` has run (saved with the network), and under
        which :attr:`prepared_params` (:meth:`changed_since_prepared`)."""
        self.prepared.fill_(True)
        self._prepared_under = self.preparation_key()

    def preparation_key(self) -> dict[str, str]:
        """The values a preparation depends on: :attr:`prepared_params`, nested
        parameters included, as ``repr`` strings (comparable after ``clone``)."""
        return {key: repr(value) for key, value in self.get_params(deep=True).items()
                if key.partition("__")[0] in self.prepared_params}

    def changed_since_prepared(self, wanted: "Regularizer") -> list[str]:
        """The parameters of ``wanted`` (the configured regulariser) whose values
        differ from those this one was prepared under; empty when it was not
        prepared in this session (e.g. restored by ``load_params``)."""
        under = getattr(self, "_prepared_under", None)
        if under is None or not bool(self.prepared):
            return []
        key = wanted.preparation_key()
        return sorted(name for name in key if under.get(name) != key[name])

    def forward(self, outputs: Any, y: torch.Tensor) -> list[LossTerm]:
        """The loss terms of one batch.

        Parameters
        ----------
        outputs : NetworkOutput
            ``(target, source, features)`` of the batch.
        y : Tensor of shape (N,)
            Label indices into ``classes_``.

        Returns
        -------
        list of LossTerm
            In the order of :attr:`terms`.
        """
        raise NotImplementedError
