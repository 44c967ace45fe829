"""Training of an S4D classifier: ``cosim train`` (entry point :func:`train_run`).

A run folder holds

* ``model.npz`` — every tensor of the model (state dict, float32; no pickled objects),
* ``test_split.npz`` — the test inputs and labels the metrics were computed on (so that
  ``cosim deploy`` evaluates exactly them) and the first 64 training inputs (``X_calib``,
  for the converter ranges at deployment),
* ``train.json`` — resolved settings, architecture, every seed, data set description, the
  device-noise statistics used, history per epoch (loss, train and test accuracy), timings and
  library versions,
* ``metrics.json`` — ``test_accuracy``, ``n_test`` and the model size.

Determinism: the model's initial weights come from ``seed``; batch order, dropout and the
training noise from generators seeded by ``seed`` as well. Torch runs on ``threads`` threads
(default 1) with deterministic algorithms requested; on one CPU thread the same seed gives the
same weights and the same accuracy. With several threads, floating-point reductions may be
ordered differently and results can differ in the last bits.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from cosim.errors import CosimError
from cosim.train.config import TrainConfig
from cosim.train.data import Dataset, load_dataset

MODEL_FILE = "model.npz"
TEST_FILE = "test_split.npz"
CALIBRATION_SAMPLES = 64
"""Training inputs kept in the run (``X_calib``) to set the deployment DAC ranges."""


@dataclass
class TrainResult:
    """What :func:`train_run` produced (also written to the run folder)."""

    model: Any
    dataset: Dataset
    metrics: dict[str, Any]
    record: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - part of the train extra
        raise CosimError("training needs PyTorch: pip install 'cosim[train]' (torch==2.13.0, CPU)") from exc
    return torch


def setup_torch(threads: int = 1) -> Any:
    """Import torch, set its thread count and request deterministic algorithms."""
    torch = _torch()
    torch.set_num_threads(int(threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch


def device_noise(config: TrainConfig) -> tuple[Any, dict[str, float]]:
    """The :class:`NoiseSpec` of the config and the statistics it came from."""
    from cosim.train.qat import NoiseSpec, programming_statistics

    settings = config.noise
    if not settings.programming:
        return NoiseSpec(gain_sigma=settings.gain_sigma), {"gain_sigma": settings.gain_sigma}
    from cosim.device.modelfile import load_model
    from cosim.paths import DEFAULT_MODEL

    model = load_model(settings.model_file or DEFAULT_MODEL)
    stats = programming_statistics(model, seed=config.seed)
    sigma = stats["rel_sigma"] if settings.rel_sigma is None else float(settings.rel_sigma)
    stats.update({"rel_sigma_used": sigma, "gain_sigma": settings.gain_sigma})
    return NoiseSpec(rel_sigma=sigma, g_min_ratio=stats["g_min_ratio"], gain_sigma=settings.gain_sigma), stats


def evaluate(model: Any, X: np.ndarray, y: np.ndarray, batch_size: int = 256, override: Any = None) -> float:
    """Accuracy of ``model`` (eval mode) on (X, y)."""
    torch = _torch()
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            logits = model(torch.from_numpy(X[start:start + batch_size]), override)
            correct += int((logits.argmax(-1).numpy() == y[start:start + batch_size]).sum())
    return correct / max(len(y), 1)


def _optimizer(model: Any, config: TrainConfig) -> Any:
    torch = _torch()
    ssm, other = [], []
    for name, parameter in model.named_parameters():
        (ssm if name.rsplit(".", 1)[-1] in ("log_dt", "log_A_real", "A_imag") else other).append(parameter)
    t = config.training
    return torch.optim.AdamW(
        [{"params": other, "lr": t.lr, "weight_decay": t.weight_decay},
         {"params": ssm, "lr": t.ssm_lr, "weight_decay": 0.0}])


def _fit(model: Any, data: Dataset, config: TrainConfig, epochs: int, generator: Any, history: list[dict[str, Any]],
         phase: str, on_epoch: Callable[[int, dict[str, Any]], None], qat_from: int = 0, quant: Any = None,
         noise: Any = None, projected: Optional[set[tuple[int, int, int]]] = None) -> None:
    torch = _torch()
    from cosim.train.qat import QuantSpec, project_stored_modes, stored_stability_penalty

    stored = config.stability if config.stability.stored_floor else None
    projected = set() if projected is None else projected
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)
    batch = config.training.batch_size
    for epoch in range(epochs):
        active = quant if (quant is not None and epoch >= qat_from) else QuantSpec(scheme=config.qat.scheme)
        model.set_hardware(active, noise, generator)
        model.train()
        order = torch.randperm(len(y), generator=generator)
        total, correct, seen = 0.0, 0, 0
        start = time.perf_counter()
        for first in range(0, len(y), batch):
            index = order[first:first + batch]
            optimizer.zero_grad()
            logits = model(X[index])
            loss = torch.nn.functional.cross_entropy(logits, y[index])
            if stored is not None and stored.stored_penalty > 0:
                loss = loss + stored.stored_penalty * stored_stability_penalty(model, stored.stored_margin)
            loss.backward()
            optimizer.step()
            if stored is not None:  # projected gradient descent: stay inside the stored margin
                projected.update(project_stored_modes(model, stored.stored_margin)["modes"])
            total += float(loss.detach()) * len(index)
            correct += int((logits.argmax(-1) == y[index]).sum())
            seen += len(index)
        scheduler.step()
        entry = {"phase": phase, "epoch": len(history) + 1, "loss": total / seen, "train_accuracy": correct / seen,
                 "test_accuracy": evaluate(model, data.X_test, data.y_test), "quantized": active.active,
                 "seconds": time.perf_counter() - start}
        history.append(entry)
        on_epoch(epoch, entry)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("cosim", "torch", "numpy", "scipy", "scikit-learn", "pyts"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def save_model(model: Any, path: Path) -> Path:
    """Every tensor of the state dict into an ``.npz`` (atomic)."""
    from cosim.fileio import atomic_path

    arrays = {name: tensor.detach().cpu().numpy() for name, tensor in model.state_dict().items()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as stream:
            np.savez(stream, **arrays)
    return path


def build_model(architecture: dict[str, Any], seed: int = 0) -> Any:
    """A classifier of the recorded architecture (weights from ``seed``)."""
    from cosim.train.model import Architecture, S4DClassifier

    return S4DClassifier(Architecture(**architecture), seed=seed)


def load_run(run: Path) -> tuple[Any, dict[str, Any], Dataset]:
    """(model in eval mode with the stored quantizer, train.json record, test split) of a run."""
    torch = setup_torch(1)
    from cosim.train.qat import QuantSpec

    run = Path(run)
    try:
        record = json.loads((run / "train.json").read_text())
        with np.load(run / MODEL_FILE, allow_pickle=False) as archive:
            state = {key: torch.from_numpy(archive[key]) for key in archive.files}
        with np.load(run / TEST_FILE, allow_pickle=False) as archive:
            X_test, y_test = archive["X_test"], archive["y_test"]
    except FileNotFoundError as exc:
        raise CosimError(f"{run}: not a training run folder (missing {Path(exc.filename).name})") from None
    except (OSError, ValueError, KeyError) as exc:
        reason = "pickled objects are refused" if "pickle" in str(exc) else str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CosimError(f"{run}: unreadable training run ({reason})") from None
    try:
        model = build_model(record["architecture"], seed=int(record["config"]["seed"]))
        quant = QuantSpec(bits=record["config"]["qat"]["bits"], scheme=record["config"]["qat"]["scheme"])
        info = record["dataset"]
        name = str(info["name"])
        classes = np.asarray(info.get("classes", list(range(int(info["n_classes"])))))
    except KeyError as exc:
        raise CosimError(f"{run / 'train.json'}: not a training record (missing key {exc})") from None
    except (TypeError, ValueError, AttributeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CosimError(f"{run / 'train.json'}: invalid training record ({reason})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = "; ".join(lines[1:3]) if len(lines) > 1 else (lines[0] if lines else "")
        raise CosimError(f"{run / MODEL_FILE}: does not match the architecture in train.json ({detail})") from None
    n_inputs = int(record["architecture"].get("n_inputs", 0))
    if X_test.ndim != 3 or X_test.shape[1] != n_inputs or X_test.shape[0] == 0 or y_test.shape != (X_test.shape[0],):
        raise CosimError(f"{run / TEST_FILE}: X_test {X_test.shape} and y_test {y_test.shape} do not fit a model "
                         f"with {n_inputs} input channel(s)")
    model.set_hardware(quant)
    model.eval()
    empty = np.zeros((0,) + X_test.shape[1:], dtype=np.float32)
    dataset = Dataset(name, empty, np.zeros(0, dtype=np.int64), X_test, y_test, classes, {})
    return model, record, dataset


def load_calibration(run: Path) -> np.ndarray:
    """The training inputs kept for converter calibration (``X_calib``) of a run."""
    try:
        with np.load(Path(run) / TEST_FILE, allow_pickle=False) as archive:
            return archive["X_calib"]
    except (OSError, ValueError, KeyError) as exc:
        raise CosimError(f"{Path(run) / TEST_FILE}: no calibration inputs X_calib ({exc})") from None


def stored_stability(model: Any, config: TrainConfig, data: Dataset,
                     projected: Optional[set[tuple[int, int, int]]] = None) -> dict[str, Any]:
    """With ``stability.stored_floor``: project every stored (quantized) mode block to
    ``|λ_q| ≤ 1 − stored_margin`` (:func:`cosim.train.qat.project_stored_modes`; training
    already projected after every step, ``projected`` holds the (layer, channel, mode) indices
    it changed), recording the test accuracy before this final projection. Always records the
    smallest stored margin ``1 − |λ_q|`` and the largest stored |λ_q| (quantizer as set on the
    model)."""
    from cosim.train.qat import project_stored_modes, stored_margins

    settings = config.stability
    info: dict[str, Any] = {"enabled": settings.stored_floor, "margin": settings.stored_margin,
                            "penalty": settings.stored_penalty, "projected_modes": 0, "rounds": 0}
    if settings.stored_floor:
        info["test_accuracy_before_projection"] = evaluate(model, data.X_test, data.y_test)
        final = project_stored_modes(model, settings.stored_margin)
        modes = set(projected or ()) | set(final.pop("modes"))
        info.update(final)
        info["projected_at_export"] = final["projected_modes"]
        info["projected_modes"] = len(modes)
    margins = [m for m in stored_margins(model) if m.size]
    minimum = float(min(m.min() for m in margins)) if margins else float("nan")
    info["min_stored_margin"] = minimum
    info["max_stored_abs_lambda"] = 1.0 - minimum
    return info


def train_run(config: TrainConfig, output: Path, progress: bool = True) -> TrainResult:
    """Train (float or QAT), optionally prune and fine-tune, evaluate, write the run folder."""
    torch = setup_torch(config.threads)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cosim.fileio import write_json_atomic
    from cosim.train.model import Architecture, S4DClassifier
    from cosim.train.qat import QuantSpec, prune_model

    if config.task is None and config.data is None:
        raise CosimError("give --task NAME or --data FILE.npz (or task/data in the config)")
    started = time.perf_counter()
    data = load_dataset(config.task, config.data, split_seed=config.training.split_seed)
    m = config.model
    arch = Architecture(n_inputs=data.n_inputs, n_classes=data.n_classes, channels=m.channels,
                        state_size=m.state_size, layers=m.layers, dropout=m.dropout, init=m.init,
                        dt_min=m.dt_min, dt_max=m.dt_max, variant=m.variant,
                        dt_floor=config.stability.dt_floor, margin_floor=config.stability.margin_floor)
    model = S4DClassifier(arch, seed=config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    noise, noise_stats = device_noise(config)
    quant = QuantSpec(bits=config.qat.bits, scheme=config.qat.scheme)
    history: list[dict[str, Any]] = []
    prune = config.prune
    pruning = prune.keep_modes is not None or prune.keep_channels is not None
    total_epochs = config.training.epochs + (prune.finetune_epochs if pruning else 0)
    columns = (TextColumn("train {task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.3f} test {task.fields[acc]:.3f}"), TimeElapsedColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("epochs", total=total_epochs, name=data.name, loss=math.nan, acc=math.nan)

        def on_epoch(_: int, entry: dict[str, Any]) -> None:
            bar.update(task, advance=1, loss=entry["loss"], acc=entry["test_accuracy"])

        projected: set[tuple[int, int, int]] = set()
        _fit(model, data, config, config.training.epochs, generator, history, "train", on_epoch,
             qat_from=config.qat.start_epoch, quant=quant, noise=noise, projected=projected)
        pruned: dict[str, Any] = {}
        if pruning:
            model, pruned = prune_model(model, data.X_train, prune.keep_modes, prune.keep_channels)
            projected = set()  # mode indices change with pruning; count the fine-tuning's
            _fit(model, data, config, prune.finetune_epochs, generator, history, "finetune", on_epoch,
                 quant=quant, noise=noise, projected=projected)
    model.set_hardware(quant)
    stability = stored_stability(model, config, data, projected)
    accuracy = evaluate(model, data.X_test, data.y_test)
    seconds = time.perf_counter() - started
    metrics = {
        "test_accuracy": accuracy,
        "n_test": int(data.y_test.size),
        "bits": quant.label(),
        "variant": arch.variant,
        "crossbar_memory_bits": model.crossbar_memory_bits(quant.bits),
        "float_crossbar_memory_bits": model.crossbar_memory_bits(None),
        "parameters": model.parameter_count(),
        "train_seconds": seconds,
        "min_stored_margin": stability["min_stored_margin"],
        "projected_modes": stability["projected_modes"],
    }
    record = {
        "config": config.model_dump(mode="json"),
        "architecture": model.arch.as_dict(),
        "dataset": data.describe(),
        "seeds": {"model": config.seed, "batches_dropout_noise": config.seed, "split": config.training.split_seed},
        "noise": noise_stats,
        "pruning": pruned,
        "stored_stability": stability,
        "history": history,
        "seconds": seconds,
        "threads": config.threads,
        "versions": _versions(),
    }
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    files = [save_model(model, output / MODEL_FILE)]
    from cosim.fileio import atomic_path

    with atomic_path(output / TEST_FILE) as tmp:
        with open(tmp, "wb") as stream:
            np.savez(stream, X_test=data.X_test, y_test=data.y_test, X_calib=data.X_train[:CALIBRATION_SAMPLES])
    files.append(output / TEST_FILE)
    files.append(write_json_atomic(output / "train.json", record))
    files.append(write_json_atomic(output / "metrics.json", metrics))
    return TrainResult(model, data, metrics, record, files)
