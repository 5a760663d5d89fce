"""Early stopping: "halting training when the validation loss has stopped decreasing but the training
loss is still going down" (notes 002), keeping the best weights.

Rule (``mode="min"``; ``"max"`` flips the inequality), at the n-th call ``step(v_n, model)``::

    improved  ⇔  v_n < best − min_delta            (mode="max": v_n > best + min_delta)
    improved:  best ← v_n, best_step ← n, wait ← 0, best weights ← a copy of the model's state
    else:      wait ← wait + 1;   stop  ⇔  wait > patience   … no improvement in ``patience`` calls

so ``patience`` counts *calls* to :meth:`EarlyStopping.step` (usually one per epoch, but any
evaluation interval works), and training stops at the (patience + 1)-th call in a row without
improvement. Calls with n < ``start_from`` are ignored (a warm-up that may be noisy). With
``check_finite=True`` a NaN/±inf value stops at once.

:meth:`EarlyStopping.restore` loads the best weights *whatever ended the run* — this object stopping
it, the epoch budget running out, or the user breaking the loop (the defect of Keras'
``restore_best_weights`` before 2.6, keras #12511; Lightning keeps no best weights at all, #1415).
Its whole state, best weights included, is in :meth:`state_dict` so it survives a checkpoint
(Lightning #18727).

Which value to monitor: an over-confident classifier's validation *loss* (cross-entropy) can rise
early while its validation *accuracy* is still improving — a few confidently wrong examples cost
more and more loss — so ``EarlyStopping(monitor="val_acc", mode="max")`` may be the better choice.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from ..validation import check_bool, check_choice, check_int, check_number
from ._state import clone_state

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Stop when ``monitor`` has not improved for ``patience`` calls; keep and restore the best weights.

    ``monitor`` names the value (``fit`` reads it from its validation results: ``"val_loss"`` or a
    metric); it is not used by :meth:`step` itself.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "min",
        patience: int = 10,
        min_delta: float = 0.0,
        restore_best: bool = True,
        check_finite: bool = True,
        start_from: int = 0,
    ) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be a non-empty string (a value's name), got {monitor!r}")
        self.monitor = monitor
        self.mode = check_choice("mode", mode, ("min", "max"))
        self.patience = check_int("patience", patience, low=0)
        self.min_delta = check_number("min_delta", min_delta, low=0.0)
        self.restore_best = check_bool("restore_best", restore_best)
        self.check_finite = check_bool("check_finite", check_finite)
        self.start_from = check_int("start_from", start_from, low=0)
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self.calls = 0
        self.wait = 0
        self.best: float | None = None
        self.best_step: int | None = None
        self.stopped_step: int | None = None
        self.stop_reason: str | None = None
        self.best_state: dict[str, Tensor] | None = None

    @property
    def stopped(self) -> bool:
        return self.stopped_step is not None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, value: float | Tensor, model: nn.Module | None = None) -> bool:
        """Record ``value`` (the n-th call, n = 0, 1, …); ``True`` means stop.

        When it improves and ``restore_best`` is set, a copy of ``model.state_dict()`` is kept.
        Once stopped, further calls return ``True`` and change nothing.
        """
        if self.stopped:
            return True
        value = float(value.detach()) if isinstance(value, Tensor) else float(value)
        n = self.calls
        self.calls += 1
        if self.check_finite and not math.isfinite(value):
            self.stopped_step, self.stop_reason = n, "nonfinite"
            return True
        if n < self.start_from:
            return False
        if self._improved(value):
            self.best, self.best_step, self.wait = value, n, 0
            if self.restore_best:
                if model is None:
                    raise ValueError(
                        "step(value, model): restore_best=True needs the model to copy its weights"
                    )
                self.best_state = clone_state(model.state_dict())
            return False
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_step, self.stop_reason = n, "patience"
            return True
        return False

    def restore(self, model: nn.Module) -> None:
        """Load the best weights into ``model`` (in place), however the run ended."""
        if self.best_state is None:
            raise RuntimeError(
                "EarlyStopping.restore: no best weights kept (restore_best=False, or step() never "
                "recorded an improvement)"
            )
        model.load_state_dict(self.best_state)

    # -- checkpointing ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue, best weights included (tensors and plain values only)."""
        return {
            "monitor": self.monitor,
            "mode": self.mode,
            "patience": self.patience,
            "min_delta": self.min_delta,
            "restore_best": self.restore_best,
            "check_finite": self.check_finite,
            "start_from": self.start_from,
            "calls": self.calls,
            "wait": self.wait,
            "best": self.best,
            "best_step": self.best_step,
            "stopped_step": self.stopped_step,
            "stop_reason": self.stop_reason,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        settings = ("monitor", "mode", "patience", "min_delta", "restore_best", "check_finite", "start_from")
        different = [k for k in settings if state.get(k) != getattr(self, k)]
        if different:
            shown = ", ".join(f"{k}: saved {state.get(k)!r}, here {getattr(self, k)!r}" for k in different)
            raise ValueError(f"EarlyStopping.load_state_dict: the saved state has other settings ({shown})")
        for key in ("calls", "wait", "best", "best_step", "stopped_step", "stop_reason"):
            setattr(self, key, state[key])
        best_state = state["best_state"]
        self.best_state = None if best_state is None else {k: v.clone() for k, v in best_state.items()}

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(monitor={self.monitor!r}, mode={self.mode!r}, patience={self.patience}, "
            f"min_delta={self.min_delta:g}, best={self.best}, best_step={self.best_step}, "
            f"stopped_step={self.stopped_step})"
        )
