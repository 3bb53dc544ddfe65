"""Several regularisers at once (e.g. Co-Tuning + BSS)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from sk_cotuning.regularization._base import LossTerm, Regularizer

__all__ = ["Combined"]


class Combined(Regularizer):
    """The sum of several regularisers' terms, each prepared on its own.

    ``FineTuningClassifier(regularizer=["co_tuning", "bss"])`` builds one;
    parameters are addressed as ``regularizer__<name>__<param>`` (e.g.
    ``regularizer__co_tuning__trade_off``), as in a scikit-learn ``Pipeline``.

    Parameters
    ----------
    parts : list of (str, Regularizer)
        Named regularisers; names and term names must be unique.

    Notes
    -----
    ``needs`` is the union of the parts'; the source head trains if any part
    that reads it trains it; the default weight decay is the smallest any
    part asks for.
    """

    name = "combined"

    def __init__(self, parts: list) -> None:
        super().__init__()
        self.parts = parts
        self.members = nn.ModuleDict()
        for part_name, part in self._checked_parts():
            self.members[part_name] = part

    def _checked_parts(self) -> list[tuple[str, Regularizer]]:
        parts = self.parts
        if not isinstance(parts, (list, tuple)) or not parts:
            raise ValueError(f"parts must be a non-empty list of (name, Regularizer), got {parts!r}.")
        names, terms = set(), set()
        for item in parts:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
                    and isinstance(item[1], Regularizer)):
                raise TypeError(f"Each part must be a (name, Regularizer) pair, got {item!r}.")
            name, part = item
            if name in names or "__" in name or not name:
                raise ValueError(f"Part names must be unique, non-empty and without '__': {name!r}.")
            if isinstance(part, Combined):
                raise ValueError("A Combined regularizer cannot contain another; list the parts.")
            clash = terms.intersection(part.terms)
            if clash:
                raise ValueError(
                    f"Regularizers in a combination must not share loss terms, but {name!r} "
                    f"repeats {sorted(clash)} (e.g. L2-SP and DELTA both penalise the head): "
                    f"combine methods that regularise different things."
                )
            names.add(name)
            terms.update(part.terms)
        return list(parts)

    # scikit-learn parameters, Pipeline-style
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params: dict[str, Any] = {"parts": self.parts}
        if deep:
            for name, part in self.parts:
                params[name] = part
                params.update({f"{name}__{k}": v for k, v in part.get_params().items()})
        return params

    def set_params(self, **params: Any) -> "Combined":
        if "parts" in params:
            self.parts = params.pop("parts")
        by_name = dict(self.parts)
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in by_name:
                raise ValueError(
                    f"Invalid parameter {key!r} for the combined regularizer; parameters are "
                    f"<part>__<param> with parts {sorted(by_name)}."
                )
            if sub:
                by_name[name].set_params(**{sub: value})
            else:
                self.parts = [(n, value if n == name else p) for n, p in self.parts]
        self.members = nn.ModuleDict(dict(self._checked_parts()))
        return self

    def extra_repr(self) -> str:
        return ""

    @property
    def terms(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(t for _, part in self.parts for t in part.terms)

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset().union(*(part.needs for _, part in self.parts))

    @property
    def trains_source_head(self) -> bool:  # type: ignore[override]
        return any(p.trains_source_head for _, p in self.parts if "source" in p.needs)

    @property
    def weight_decay(self) -> float | None:  # type: ignore[override]
        values = [p.weight_decay for _, p in self.parts if p.weight_decay is not None]
        return min(values) if values else None

    def check(self) -> None:
        for _, part in self._checked_parts():
            part.check()

    def preparation_key(self) -> dict[str, str]:
        """Every part's, under its ``<part>__`` prefix."""
        return {f"{name}__{key}": value for name, part in self.parts
                for key, value in part.preparation_key().items()}

    def bind(self, n_classes: int, n_source: int, n_features: int) -> None:
        for part in self.members.values():
            part.bind(n_classes, n_source, n_features)

    def attach(self, network: nn.Module) -> None:
        super().attach(network)
        for part in self.members.values():
            part.attach(network)

    def prepare(self, net: Any, dataset: torch.utils.data.Dataset) -> None:
        """Prepare every part from one pass of the pre-trained network.

        The outputs the parts read (:attr:`Regularizer.prepares_from`) are
        collected together, before any part prepares (so a part that changes
        the network, such as StochNorm re-estimating its statistics, cannot
        change what the others see); parts then prepare in order.
        """
        todo = [part for part in self.members.values() if not bool(part.prepared)]
        fields = sorted(set().union(*(part.prepares_from for part in todo)))
        shared = (net.sharing_outputs(dataset, fields, desc="preparation pass") if fields
                  else contextlib.nullcontext())
        with shared:
            for part in todo:
                part.prepare(net, dataset)
                part.mark_prepared()

    def forward(self, outputs: Any, y: torch.Tensor) -> list[LossTerm]:
        return [term for part in self.members.values() for term in part(outputs, y)]
