"""A model-agnostic training loop: shuffled batches, Adam, progress reports, early stopping, NaN guard."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ml.config import TrainConfig
from ml.paddle_setup import paddle
from ml.progress import progress as progress_display

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (the loss became NaN or infinite)."""


@dataclass(frozen=True)
class ProgressEvent:
    """One report to the dashboard: where training is, the running loss, and the latest metrics."""

    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based within the epoch
    steps: int  # steps per epoch
    loss: float  # mean loss of the epoch so far
    percent: float  # 0-100 of the planned steps
    metrics: dict[str, float] = field(default_factory=dict)  # validation metrics, set at epoch end


@dataclass
class FitResult:
    """What the loop did: epochs run, the best validation metrics, and its speed."""

    epochs_run: int
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    train_seconds: float
    examples_per_second: float


LossFn = Callable[[npt.NDArray[np.int64], np.random.Generator], paddle.Tensor]
Callback = Callable[[ProgressEvent], None] | None


def fit(
    model: paddle.nn.Layer,
    examples: npt.NDArray[np.int64],
    loss_fn: LossFn,
    config: TrainConfig,
    *,
    validate: Callable[[], dict[str, float]] | None = None,
    callback: Callback = None,
    progress: bool = True,
    before_epoch: Callable[[np.random.Generator], None] | None = None,
) -> FitResult:
    """Train on shuffled batches of example ids (loss_fn(batch_ids, rng) is their scalar loss), keeping the
    parameters of the epoch best by config.monitor, also when a loss not finite raises TrainingError;
    before_epoch runs at the start of each epoch."""
    rng = np.random.default_rng(config.seed)
    per_epoch = min(examples.size, config.examples_per_epoch or examples.size)
    steps = math.ceil(per_epoch / config.batch_size)
    total = steps * config.epochs
    lr, schedule = config.learning_rate, None
    if config.lr_decay:
        schedule = paddle.optimizer.lr.CosineAnnealingDecay(lr, T_max=total, eta_min=lr / 10)
    optimizer = paddle.optimizer.Adam(  # multi-tensor: one fused update of all parameters a step
        learning_rate=schedule or lr,
        parameters=model.parameters(),
        weight_decay=config.weight_decay or None,
        use_multi_tensor=True,
    )
    best_score, best_epoch, best_state = -math.inf, 0, None
    best_metrics: dict[str, float] = {}
    history: list[dict[str, float]] = []
    seen, train_seconds = 0, 0.0
    bar = progress_display(total, "train", "steps", enabled=progress, leave=False)
    epoch = 0

    def report(step: int, loss: float, percent: float, metrics: dict[str, float] | None = None) -> None:
        if callback is not None:
            callback(ProgressEvent(epoch, config.epochs, step, steps, loss, percent, metrics or {}))

    try:
        for epoch in range(1, config.epochs + 1):
            model.train()
            started = time.perf_counter()
            if before_epoch is not None:
                before_epoch(rng)
            order = rng.permutation(examples)[:per_epoch]  # a new sample each epoch when it is not all
            running = 0.0
            for step in range(1, steps + 1):
                batch = order[(step - 1) * config.batch_size : step * config.batch_size]
                if batch.size < 2:
                    continue
                loss = loss_fn(batch, rng)
                value = float(loss)
                if not math.isfinite(value):
                    raise TrainingError(
                        f"the loss became {value} at epoch {epoch} step {step}; "
                        "lower the learning rate or raise the temperature"
                    )
                loss.backward()
                optimizer.step()
                optimizer.clear_grad()
                if schedule is not None:
                    schedule.step()
                running += value
                seen += batch.size
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{running / step:.4f}")
                if step % 20 == 0 or step == steps:
                    report(step, running / step, 100.0 * ((epoch - 1) * steps + step) / total)
            train_seconds += time.perf_counter() - started
            metrics = {"loss": running / steps}
            if validate is not None:
                model.eval()
                metrics.update(validate())
            history.append(metrics)
            log.info("epoch %d/%d %s", epoch, config.epochs, {k: round(v, 4) for k, v in metrics.items()})
            report(steps, metrics["loss"], 100.0 * epoch * steps / total, metrics)
            score = metrics.get(config.monitor, -metrics["loss"])
            if score > best_score:
                best_score, best_epoch, best_metrics = score, epoch, metrics
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            elif epoch - best_epoch >= config.patience:
                log.info("early stop at epoch %d: %s peaked at epoch %d", epoch, config.monitor, best_epoch)
                report(steps, metrics["loss"], 100.0, metrics)  # training is done: tell the dashboard
                break
    finally:
        bar.close()
        if best_state is not None:
            model.set_state_dict(best_state)
        model.eval()
    return FitResult(epoch, best_epoch, best_metrics, history, train_seconds, seen / max(train_seconds, 1e-9))
