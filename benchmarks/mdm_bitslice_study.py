"""MDM in its paper's setting: bit-sliced tiles, a trained network, its own activations.

Regenerates the figures and tables of docs/crossbar.md ("MDM on bit-sliced crossbars"):

* a scikit-learn MLP (64 → 256 → 128 → 10, ReLU, seed 0) trained on the digits data set
  (1 257 training / 540 test images, split seed 0);
* every layer as 8-bit weights in 1-bit slices (differential pairs, zero bits in HRS),
  ON/OFF ``--on-off`` (10; G_on = 1/4.5 kΩ), ``--tile`` × ``--tile`` tiles (128), analog
  inputs at 0.2 V full scale, driver and sense 1 Ω;
* for each wire value of ``--wires`` (1 and 2.5 Ω segments): NF per tile without and with MDM
  on the layers' own test-set activations (MDM loads and input full scales from the training
  set), and the test accuracy without and with MDM (same cells); with ``--compensation`` also
  with the per-column digital gain;
* the MDM column variants of ``--columns`` (``flip`` = the paper, ``sorted``, ``keep`` = rows
  only): the first at every wire value, the others at the first;
* a control with heavy-tailed weights (Student t, 2 degrees of freedom) of layer 1's shape read
  with layer 1's activations: how much MDM gains when the high-order bits are sparse.

Usage: ``python benchmarks/mdm_bitslice_study.py [--out DIR] [--quick] [--tile 128]
[--on-off 10] [--wires 1,2.5] [--columns flip,sorted] [--compensation] [--no-control]
[--nf-only | --accuracy-only]``. Writes ``study.json``, ``tiles.csv``,
``nf_reduction_per_tile.png``, ``accuracy.png`` and ``bit_density.png`` (``--accuracy-only``:
``accuracy.json`` and ``accuracy.png``) to ``--out`` and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from cosim.crossbar.bitslice import InputEncoding, SliceConfig, SlicedMatrix, quantize
from cosim.crossbar.tiled import Layer, TiledReader, Wires, forward, mlp_accuracy

SEED = 0


def train_digits_mlp(seed: int = SEED) -> tuple[list[Layer], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The trained network's layers and the (train x, train y, test x, test y) split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=0.3, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=300, random_state=seed).fit(x_train, y_train)
    layers = [Layer(w, b) for w, b in zip(net.coefs_, net.intercepts_)]
    return layers, x_train, y_train, x_test, y_test


def bit_density(weights: np.ndarray, bits: int = 8) -> np.ndarray:
    """Fraction of ones per magnitude bit (LSB first) of the sign–magnitude integers."""
    q, _ = quantize(weights, bits)
    return np.array([((np.abs(q) >> b) & 1).mean() for b in range(bits - 1)])


def readers_for(layers: list[Layer], config: SliceConfig, tile: int, r_wire: float) -> list[TiledReader]:
    return [TiledReader(SlicedMatrix.from_weights(l.weights, config, tile, tile), Wires(r_wire), InputEncoding()) for l in layers]


def nf_rows(readers: list[TiledReader], acts: list[np.ndarray], calib: list[np.ndarray], tag: dict,
            columns: str = "flip") -> list[dict]:
    """NF per tile of every layer on its own activations; MDM from the calibration set."""
    rows = []
    for k, reader in enumerate(readers):
        x_max = reader.x_max(calib[k])
        study = reader.study(acts[k], x_max=x_max, remaps=reader.remaps(calib[k], x_max, columns))
        for t in study.tiles:
            if t.before is None:
                continue
            rows.append({**tag, "layer": k, "tile": t.index, "rows": t.tile.shape[0], "cols": t.tile.shape[1],
                         "nf_before": t.before.tile_nf, "nf_after": t.after.tile_nf, "nf_reduction": t.nf_reduction,
                         "output_error_before": t.output_error_before, "output_error_after": t.output_error_after,
                         "cost_reduction": 1 - t.cost_after / t.cost_before, "ideal_unchanged": t.ideal_unchanged})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("mdm_study"))
    parser.add_argument("--quick", action="store_true", help="120 test vectors, 1 Ω only, no control")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--on-off", type=float, default=10.0)
    parser.add_argument("--wires", default="1,2.5", help="segment resistances [Ω], comma-separated")
    parser.add_argument("--columns", default="flip,sorted",
                        help="MDM column variants (flip = the paper, sorted, keep = rows only); the first is "
                             "measured at every wire value, the others at the first")
    parser.add_argument("--compensation", action="store_true", help="also the accuracy with per-column digital gain")
    parser.add_argument("--no-control", action="store_true", help="skip the heavy-tailed control")
    parser.add_argument("--accuracy-only", action="store_true", help="skip the NF per tile (accuracy runs)")
    parser.add_argument("--nf-only", action="store_true", help="skip the accuracy")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    layers, x_train, y_train, x_test, y_test = train_digits_mlp()
    wires = [float(w) for w in args.wires.split(",")]
    variants = [c.strip() for c in args.columns.split(",") if c.strip()]
    if args.quick:
        x_test, y_test, wires, args.no_control = x_test[:120], y_test[:120], wires[:1], True
    config = SliceConfig.from_on_off(args.on_off, weight_bits=8, slice_bits=1)
    calib, acts = forward(layers, x_train), forward(layers, x_test)
    tiles, accuracy = [], []
    for r_wire in wires:
        readers = readers_for(layers, config, args.tile, r_wire)
        for n, columns in enumerate(variants if r_wire == wires[0] else variants[:1]):
            name = "digits MLP" + ("" if n == 0 else f", columns {columns}")
            if not args.accuracy_only:
                tiles += nf_rows(readers, acts, calib, {"weights": name, "r_wire": r_wire}, columns)
            if args.nf_only:
                continue
            settings = ("float", "ideal", "plain", "mdm") if n == 0 else ("mdm",)
            acc = mlp_accuracy(layers, readers, x_train, x_test, y_test, columns=columns, compensation=False,
                               settings=settings)
            if args.compensation:  # per-column digital gain, as mapped and with this MDM (cached reads)
                acc.update(mlp_accuracy(layers, readers, x_train, x_test, y_test, columns=columns, compensation=True,
                                        settings=()))
            accuracy.append({"r_wire": r_wire, "columns": columns, **acc})
            print(f"r_wire {r_wire} Ω, MDM columns {columns}: {acc}  ({time.perf_counter() - start:.0f} s)", flush=True)
    heavy = None
    if not args.no_control:  # heavy-tailed weights of layer 1's shape, read with layer 1's own activations
        rng = np.random.default_rng(SEED)
        heavy = rng.standard_t(2, size=layers[1].weights.shape) * layers[1].weights.std()
        control = readers_for([Layer(heavy, np.zeros(heavy.shape[1]))], config, args.tile, wires[0])
        control_rows = nf_rows(control, [acts[1]], [calib[1]], {"weights": "Student-t (df 2) control", "r_wire": wires[0]},
                               variants[0])
        for row in control_rows:
            row["layer"] = 1
        tiles += control_rows
    table = pd.DataFrame(tiles)
    if table.empty:  # --accuracy-only
        (args.out / "accuracy.json").write_text(json.dumps(accuracy, indent=2) + "\n")
        frame = pd.DataFrame([a for a in accuracy if "accuracy_float" in a and a["columns"] == variants[0]])
        if not frame.empty:
            import matplotlib

            matplotlib.use("Agg")
            plot_accuracy(frame, args.out)
        print(pd.DataFrame(accuracy).round(4).to_string(index=False))
        return
    table.to_csv(args.out / "tiles.csv", index=False)
    summary = (table.groupby(["weights", "r_wire"])
               .agg(tiles=("nf_reduction", "size"), nf_before=("nf_before", "mean"), nf_after=("nf_after", "mean"),
                    reduction_mean=("nf_reduction", "mean"), reduction_median=("nf_reduction", "median"),
                    reduction_best=("nf_reduction", "max"), reduction_worst=("nf_reduction", "min"),
                    cost_reduction=("cost_reduction", "mean"), out_err_before=("output_error_before", "mean"),
                    out_err_after=("output_error_after", "mean"), ideal_unchanged=("ideal_unchanged", "all"))
               .reset_index())
    density = {"digits MLP layer 1": bit_density(layers[1].weights).tolist()}
    if heavy is not None:
        density["Student-t control"] = bit_density(heavy).tolist()
    result = {
        "setting": {"weight_bits": 8, "slice_bits": 1, "signed": "differential", **config.as_dict(), "tile": args.tile,
                    "encoding": "analog", "v_read_V": 0.2, "r_source_ohm": 1.0, "r_sense_ohm": 1.0,
                    "test_vectors": int(len(x_test)), "seed": SEED},
        "summary": summary.to_dict(orient="records"), "accuracy": accuracy, "bit_density_lsb_first": density,
        "elapsed_s": time.perf_counter() - start,
    }
    (args.out / "study.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    plot(table, accuracy, density, args.out, args.tile)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary.round(4).to_string(index=False))
        print(pd.DataFrame(accuracy).round(4).to_string(index=False))
        print("bit density (LSB first):", {k: np.round(v, 3).tolist() for k, v in density.items()})
    print(f"wrote {args.out}/ in {time.perf_counter() - start:.0f} s")


def plot(table: pd.DataFrame, accuracy: list[dict], density: dict, out: Path, tile: int = 128) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(min(-0.05, table.nf_reduction.min()), max(0.5, table.nf_reduction.max()), 41)
    for (weights, r_wire), group in table.groupby(["weights", "r_wire"]):
        ax.hist(100 * group.nf_reduction, bins=100 * bins, histtype="step", linewidth=1.8,
                label=f"{weights}, {r_wire} Ω wires ({len(group)} tiles)")
    ax.axvline(46, color="k", linestyle="--", linewidth=1, label="paper's best (46 %)")
    ax.axvline(30, color="grey", linestyle=":", linewidth=1, label="goal: 30 % mean")
    ax.set_xlabel(f"NF reduction by MDM per tile (≤ {tile}×{tile}) [%]")
    ax.set_ylabel("tiles")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "nf_reduction_per_tile.png", dpi=120)
    plt.close(fig)

    frame = pd.DataFrame([a for a in accuracy if "accuracy_float" in a and a["columns"] == "flip"])
    if not frame.empty:
        plot_accuracy(frame, out)
    plot_density(density, out)


def plot_accuracy(frame: pd.DataFrame, out: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    bars = {"accuracy_float": "float", "accuracy_quantized_wire_free": "8-bit, no wires", "accuracy_wires": "wires",
            "accuracy_wires_mdm": "wires + MDM", "accuracy_wires_gain": "wires, gain-compensated",
            "accuracy_wires_mdm_gain": "wires + MDM, gain-compensated"}
    names = [n for n in bars if n in frame]
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        ax.bar(np.arange(len(frame)) + (k - (len(names) - 1) / 2) * width, 100 * frame[name], width, label=bars[name])
    ax.set_xticks(np.arange(len(frame)), [f"{r:g}" for r in frame.r_wire])
    ax.set_xlabel("wire segment resistance [Ω]")
    ax.set_ylabel("test accuracy [%]")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=120)
    plt.close(fig)


def plot_density(density: dict, out: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in density.items():
        ax.plot(np.arange(len(values)), 100 * np.asarray(values), marker="o", label=name)
    ax.set_xlabel("magnitude bit (0 = least significant)")
    ax.set_ylabel("weights with the bit set [%]")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "bit_density.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
