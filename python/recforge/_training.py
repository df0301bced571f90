"""The epoch loop shared by iterative models: progress bar, validation metric per epoch,
early stopping with the best epoch restored, callbacks, and divergence checks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .base import Recommender

__all__ = ["run_epochs", "Callback", "DivergenceError"]


class DivergenceError(FloatingPointError, ValueError):
    """Learned parameters became NaN or infinite during training."""


# A callback gets (model, epoch, logs) after every epoch; returning True stops training.
Callback = Callable[["Recommender", int, Mapping[str, float]], Any]


def _progress(total: int, desc: str, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not show, leave=False, unit="epoch")


def _divergence_error(model: Recommender, name: str, epoch: int) -> DivergenceError:
    return DivergenceError(
        f"{type(model).__name__}: {name} diverged to NaN or infinity in epoch {epoch + 1}; "
        "lower the learning rate, raise the regularization, or scale the interaction "
        "weights down, then fit again"
    )


def _check_finite(model: Recommender, epoch: int, names: Iterable[str]) -> None:
    for name in names:
        value = getattr(model, name, None)
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            continue
        # a sum is finite unless an entry is NaN or infinite (or the sum overflows: then the
        # exact check below decides); one pass without a temporary boolean array
        if np.isfinite(np.add.reduce(value, axis=None)):
            continue
        if not np.isfinite(value).all():
            raise _divergence_error(model, name, epoch)


def run_epochs(
    model: Recommender,
    n_epochs: int,
    step: Callable[[int], Mapping[str, float] | None],
    *,
    eval_set: Any = None,
    eval_every: int = 1,
    eval_metric: str = "ndcg",
    eval_k: int = 10,
    early_stopping: int | None = None,
    callbacks: Iterable[Callback] = (),
    show_progress: bool = True,
    desc: str | None = None,
    check_arrays_every_epoch: bool = True,
) -> list[dict[str, float]]:
    """Run ``step(epoch)`` up to ``n_epochs`` times and return the per-epoch history.

    Parameters
    ----------
    step : callable
        Trains one epoch; may return training statistics (e.g. ``{"loss": ...}``).
    eval_set : Interactions, optional
        Held-out interactions with the training data's id maps; ``eval_metric@eval_k`` is
        computed with :func:`recforge.evaluate` every ``eval_every`` epochs.
    early_stopping : int, optional
        Stop after this many evaluations without improvement and restore the learned arrays
        of the best evaluated epoch (needs ``eval_set``).
    callbacks : callables ``(model, epoch, logs) -> stop?``
    check_arrays_every_epoch : bool
        Check the learned arrays for NaN and infinity after every epoch (else only after the
        last one: for a ``step`` that raises ``DivergenceError`` itself when its loss is not
        finite, since a non-finite parameter makes the next epoch's loss non-finite).
    """
    from ._validation import check_positive_int
    from .evaluation import evaluate

    n_epochs = check_positive_int(n_epochs, "n_epochs")
    eval_every = check_positive_int(eval_every, "eval_every")
    if early_stopping is not None:
        early_stopping = check_positive_int(early_stopping, "early_stopping")
        if eval_set is None:
            raise ValueError("early_stopping needs an eval_set to watch")
    learned = tuple(getattr(model, "_learned", ()))
    history: list[dict[str, float]] = []
    best_value, best_epoch, best_state, stale = -np.inf, -1, None, 0
    label = f"{eval_metric}@{eval_k}"
    with _progress(n_epochs, desc or type(model).__name__, show_progress) as bar:
        for epoch in range(n_epochs):
            logs: dict[str, float] = {"epoch": epoch + 1}
            stats = step(epoch)
            if stats:
                logs.update({k: float(v) for k, v in stats.items()})
            if check_arrays_every_epoch:
                _check_finite(model, epoch, learned)
            if eval_set is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == n_epochs):
                table = evaluate(model, None, eval_set, k=eval_k, metrics=[eval_metric], fit=False)
                value = float(table["value"].iloc[0])
                logs[label] = value
                if value > best_value:
                    best_value, best_epoch, stale = value, epoch, 0
                    if early_stopping is not None:
                        best_state = {n: np.array(getattr(model, n), copy=True) for n in learned}
                else:
                    stale += 1
            history.append(logs)
            if show_progress:  # a disabled bar still formats its postfix
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "epoch"}, refresh=False)
                bar.update(1)
            stop = any(bool(cb(model, epoch, logs)) for cb in callbacks)
            if early_stopping is not None and stale >= early_stopping:
                stop = True
            if stop:
                break
    if not check_arrays_every_epoch and history:
        _check_finite(model, len(history) - 1, learned)
    if best_state is not None and best_epoch != len(history) - 1:
        for name, value in best_state.items():
            setattr(model, name, value)
        history.append({"epoch": best_epoch + 1, "restored_best": 1.0, label: best_value})
    return history
