"""Weight averaging for any optimizer: Polyak/SWA and EMA averages of a model's weights.

Notes 002 (Polyak averaging): the average of the iterates of SGD converges faster, and
generalises better, than the last iterate. :class:`WeightAverage` keeps that average beside
a model trained by any optimizer — descentlab's or torch's — and lends it to the model when
you evaluate::

    average = WeightAverage(model, kind="ema", decay=0.999)
    for batch in data:
        ...; optimizer.step(); average.update()
    with average.swap():          # the model holds the averaged weights inside the block
        evaluate(model)

The numbers are ``torch.optim.swa_utils.AveragedModel``'s (``kind="swa"``: its default
equal-weight average; ``kind="ema"``: ``multi_avg_fn=get_ema_multi_avg_fn(decay)``),
``use_buffers`` included, but only the averaged tensors are stored — no second copy of the
model — and :meth:`WeightAverage.swap` evaluates with them in the model itself. torch's
``SWALR`` drives descentlab optimizers as it drives torch's, and :meth:`WeightAverage.update_bn`
recomputes batch-norm statistics for the averaged weights (``torch.optim.swa_utils.update_bn``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import update_bn as _torch_update_bn

from ..validation import check_bool, check_choice, check_number

__all__ = ["WeightAverage"]


class WeightAverage:
    """Running average of a model's weights: ā ← ā + (w − ā)/(n + 1) (SWA) or ā ← β·ā + (1 − β)·w (EMA).

    Args:
        model: the model being trained; :meth:`update` reads its current weights.
        kind: ``"swa"`` — the equal-weight (Polyak–Ruppert) average of every weight passed to
            :meth:`update`, ``ā_n = (w_1 + … + w_n)/n`` (Izmailov et al. 2018's SWA); ``"ema"``
            — the exponential moving average ``ā_n = β·ā_{n−1} + (1 − β)·w_n``, ``ā_1 = w_1``.
        decay: β for ``kind="ema"`` (in [0, 1]).
        use_buffers: average the buffers too (batch-norm running statistics, ...), as
            ``AveragedModel(use_buffers=True)``; otherwise the model keeps its own buffers.
        device: where to keep the averages (default: with each parameter).

    The first :meth:`update` copies the weights (``n = 1``). ``state_dict()`` holds the
    averages and ``n_averaged``, so a resumed run continues the same average.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        kind: str = "swa",
        decay: float = 0.999,
        use_buffers: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"WeightAverage needs the nn.Module being trained, got {type(model).__name__}")
        self.kind = check_choice("kind", kind, ("swa", "ema"))
        self.decay = check_number("decay", decay, low=0.0, high=1.0)
        self.use_buffers = check_bool("use_buffers", use_buffers)
        self.model = model
        self.n_averaged = 0
        with torch.no_grad():
            self.averages: dict[str, Tensor] = {
                name: value.detach().clone().to(device if device is not None else value.device)
                for name, value in self._tracked(model)
            }
        # batch-norm statistics recomputed for the averaged weights (update_bn), lent by swap()
        self._bn_buffers: dict[str, Tensor] = {}

    def _tracked(self, model: nn.Module) -> Iterator[tuple[str, Tensor]]:
        yield from model.named_parameters()
        if self.use_buffers:
            yield from model.named_buffers()

    # -- averaging -------------------------------------------------------------------------------
    @torch.no_grad()
    def update(self) -> None:
        """Add the model's current weights to the average (after ``optimizer.step()``)."""
        pairs = [(self.averages[name], value.detach()) for name, value in self._tracked(self.model)]
        if self.n_averaged == 0:
            for average, current in pairs:
                average.copy_(current.to(average.device))
        else:
            current = [c.to(a.device) for a, c in pairs]
            averaged = [a for a, _ in pairs]
            floating = [i for i, a in enumerate(averaged) if a.is_floating_point() or a.is_complex()]
            others = [i for i in range(len(averaged)) if i not in set(floating)]
            if self.kind == "ema":
                if floating:
                    torch._foreach_lerp_([averaged[i] for i in floating], [current[i] for i in floating],
                                         1 - self.decay)
                for i in others:
                    averaged[i].copy_(averaged[i] * self.decay + current[i] * (1 - self.decay))
            else:
                n = self.n_averaged
                for a, c in zip(averaged, current):
                    a.copy_(a + (c - a) / (n + 1))
        self.n_averaged += 1
        if not self.use_buffers:
            self._bn_buffers = {}  # the model's own statistics are current again

    def averaged_parameters(self) -> list[Tensor]:
        """The averaged parameters, in ``model.parameters()`` order."""
        return [self.averages[name] for name, _ in self.model.named_parameters()]

    # -- lending the average to the model ------------------------------------------------------------
    def _lent(self) -> dict[str, Tensor]:
        return {**self.averages, **self._bn_buffers}

    @contextmanager
    def swap(self) -> Iterator[nn.Module]:
        """Inside the block the model holds the averaged weights (and averaged or recomputed
        buffers); its own are restored afterwards, even on an exception. Yields the model."""
        if self.n_averaged == 0:
            raise RuntimeError("WeightAverage.swap(): nothing averaged yet; call update() after a step first")
        values = dict(self.model.named_parameters()) | dict(self.model.named_buffers())
        lent = self._lent()
        with torch.no_grad():
            saved = {name: values[name].detach().clone() for name in lent}
            for name, average in lent.items():
                values[name].copy_(average)
        try:
            yield self.model
        finally:
            with torch.no_grad():
                for name, old in saved.items():
                    values[name].copy_(old)

    @torch.no_grad()
    def copy_to(self, model: nn.Module | None = None) -> nn.Module:
        """Load the averaged weights into ``model`` (default: the tracked model) for good."""
        model = self.model if model is None else model
        values = dict(model.named_parameters()) | dict(model.named_buffers())
        for name, average in self._lent().items():
            values[name].copy_(average)
        return model

    def averaged_model(self) -> nn.Module:
        """A copy of the model holding the averaged weights (what ``AveragedModel.module`` is)."""
        return self.copy_to(copy.deepcopy(self.model))

    def update_bn(self, loader: Iterable[Any], device: torch.device | str | None = None) -> None:
        """Recompute batch-norm statistics for the averaged weights (one pass over ``loader``,
        ``torch.optim.swa_utils.update_bn``); :meth:`swap` and :meth:`copy_to` then use them.
        The model's own statistics are left as they were."""
        buffers = dict(self.model.named_buffers())
        statistics = [
            f"{module_name}.{name}" if module_name else name
            for module_name, module in self.model.named_modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm)
            for name, _ in module.named_buffers(recurse=False)
        ]
        with torch.no_grad():
            before = {name: buffers[name].detach().clone() for name in statistics}
        with self.swap():
            _torch_update_bn(loader, self.model, device)
            with torch.no_grad():
                recomputed = {name: buffers[name].detach().clone() for name in statistics}
        with torch.no_grad():
            for name, value in before.items():
                buffers[name].copy_(value)
            if self.use_buffers:
                for name, value in recomputed.items():
                    self.averages[name].copy_(value)
            else:
                self._bn_buffers.update(recomputed)

    # -- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "decay": self.decay, "use_buffers": self.use_buffers,
                "n_averaged": self.n_averaged, "averages": dict(self.averages),
                "bn_buffers": dict(self._bn_buffers)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["averages"].keys() != self.averages.keys():
            missing = sorted(self.averages.keys() - state["averages"].keys())
            extra = sorted(state["averages"].keys() - self.averages.keys())
            raise ValueError(f"WeightAverage.load_state_dict: missing {missing}, unexpected {extra}")
        self.kind, self.decay, self.use_buffers = state["kind"], state["decay"], state["use_buffers"]
        self.n_averaged = int(state["n_averaged"])
        for name, value in state["averages"].items():
            self.averages[name].copy_(value)
        self._bn_buffers = {name: value.clone() for name, value in state.get("bn_buffers", {}).items()}

    def __repr__(self) -> str:
        detail = f", decay={self.decay}" if self.kind == "ema" else ""
        return f"WeightAverage(kind={self.kind!r}{detail}, n_averaged={self.n_averaged})"
