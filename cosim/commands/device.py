"""Device-model commands: ``cosim synth`` and ``cosim model import-synaptogen | show | plots``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from cosim.errors import CosimError

model_app = typer.Typer(no_args_is_help=True, help="Device model files (convert, inspect).")


#: about how many CSV rows ``cosim synth`` builds in memory at once
SYNTH_BLOCK_ROWS = 2_000_000


class SynthFormat(str, Enum):
    cycles = "cycles"
    iv = "iv"


def synth_command(
    output: Path = typer.Option(..., "-o", "--output", help="CSV file to write"),
    model: Optional[Path] = typer.Option(None, "--model", help="model JSON (default: the shipped default model)"),
    devices: int = typer.Option(16, "--devices", min=1, help="number of devices"),
    cycles: int = typer.Option(100, "--cycles", min=1, help="switching cycles per device"),
    seed: int = typer.Option(0, "--seed", min=0, max=2**31 - 1, help="random seed (recorded)"),
    fmt: SynthFormat = typer.Option(SynthFormat.cycles, "--format", help="cycles | iv"),
    v_set: float = typer.Option(-2.0, "--v-set", help="SET level / sweep end, V"),
    v_reset: float = typer.Option(1.5, "--v-reset", help="RESET level / sweep end, V"),
    dv: float = typer.Option(0.01, "--dv", help="iv: voltage step of the sweeps, V"),
    sweep_rate: float = typer.Option(1e3, "--sweep-rate", help="iv: sweep rate, V/s"),
    noise: bool = typer.Option(True, "--noise/--no-noise", help="add read/measurement noise"),
) -> None:
    """Synthesize measurement-like data from the device model (deterministic for a seed)."""
    import cosim
    from cosim.device.modelfile import load_model
    from cosim.device.synth import (
        CYCLE_COLUMNS,
        IV_COLUMNS,
        metadata_path,
        synth_cycles,
        synth_iv,
        write_csv_atomic,
    )
    from cosim.paths import DEFAULT_MODEL

    from cosim.commands._guard import check_output_file

    model_path = model or DEFAULT_MODEL
    try:
        check_output_file(output)
        m = load_model(model_path)
        # validate the settings on one device before streaming blocks of devices
        if fmt is SynthFormat.cycles:
            synth_cycles(m, 1, 1, seed, v_set=v_set, v_reset=v_reset, noise=noise)
        else:
            synth_iv(m, 1, 1, seed, v_set=v_set, v_reset=v_reset, dv=dv, sweep_rate=sweep_rate)
    except ValueError as exc:  # a setting the generators refuse
        raise CosimError(str(exc)) from None

    def blocks(advance=lambda n: None):
        """Devices in blocks (independent RNG keys: identical to one big run)."""
        per_device = cycles * (1 if fmt is SynthFormat.cycles else 800)  # rows (iv: ~samples)
        step = max(1, min(SYNTH_BLOCK_ROWS // per_device, -(-devices // 20)))  # ≥ 20 updates
        for first in range(0, devices, step):
            n = min(step, devices - first)
            if fmt is SynthFormat.cycles:
                part = synth_cycles(m, n, cycles, seed, v_set=v_set, v_reset=v_reset,
                                    noise=noise, first_device=first)
            else:
                part = synth_iv(m, n, cycles, seed, v_set=v_set, v_reset=v_reset, dv=dv,
                                sweep_rate=sweep_rate, noise=noise, first_device=first)
            meta["d2d_redrawn"] += part.attrs.get("d2d_redrawn", 0)
            yield part
            advance(n)

    meta = {
        "generator": "cosim synth",
        "cosim_version": getattr(cosim, "__version__", "unknown"),
        "seed": seed,
        "format": fmt.value,
        "model_file": str(Path(model_path).resolve()),
        "model_name": m.name,
        "devices": devices,
        "cycles": cycles,
        "v_set_V": v_set,
        "v_reset_V": v_reset,
        "dv_V": dv if fmt is SynthFormat.iv else None,
        "sweep_rate_V_per_s": sweep_rate if fmt is SynthFormat.iv else None,
        "noise": noise,
        "columns": CYCLE_COLUMNS if fmt is SynthFormat.cycles else IV_COLUMNS,
        "rng": "cosim counter hash RNG (docs/rng.md)",
        "d2d_redrawn": 0,  # devices whose D2D draw had σ <= 0 or an LRS reaching 0 Ω (redrawn)
    }
    from cosim.commands._progress import counting

    try:
        with counting(f"synthesizing {output} (devices)", devices) as advance:
            rows = write_csv_atomic(blocks(advance), output, meta)
    except OSError as exc:
        raise CosimError(f"{output}: cannot write ({exc.strerror})") from None
    typer.echo(f"wrote {rows} rows to {output} (metadata: {metadata_path(output)})")


@model_app.command("import-synaptogen")
def import_synaptogen_command(
    source: Path = typer.Argument(..., help="Synaptogen default_params.json"),
    output: Path = typer.Option(..., "-o", "--output", help="model JSON to write"),
    var_order: int = typer.Option(10, "--var-order", min=1, max=10, help="VAR order p (VAR_00p)"),
) -> None:
    """Convert the published Synaptogen parameter file into a cosim model file."""
    from cosim.commands._guard import check_output_file
    from cosim.device.modelfile import import_synaptogen, save_model

    check_output_file(output)
    m = import_synaptogen(source, var_order=var_order)
    save_model(m, output)
    typer.echo(f"wrote {output} (p = {m.var_order}, K = {m.n_components})")


@model_app.command("show")
def show_command(
    path: Optional[Path] = typer.Argument(None, help="model JSON (default: the shipped default model)"),
    ma_order: Optional[int] = typer.Option(None, "--ma-order", help="J for the captured-variance line"),
) -> None:
    """Validate a model file and print a summary (VAR stability, MA variance, window)."""
    import numpy as np

    from cosim.device.model import basis_conductances
    from cosim.device.modelfile import (
        DEFAULT_MA_ORDER,
        d2d_invalid_fraction,
        load_model,
        ma_variance_captured,
        var_spectral_radius,
    )
    from cosim.paths import DEFAULT_MODEL

    m = load_model(path or DEFAULT_MODEL)
    j = DEFAULT_MA_ORDER if ma_order is None else ma_order
    kept = ma_variance_captured(m.var_lags, m.var_chol, j)
    g_l, g_h = basis_conductances(m)
    typer.echo(f"name: {m.name}  schema {m.schema_version}")
    typer.echo(f"D2D components K = {m.n_components}, weights {np.round(m.d2d_weights, 4).tolist()}")
    invalid = float(d2d_invalid_fraction(m) @ (m.d2d_weights / m.d2d_weights.sum()))
    typer.echo(f"D2D draws redrawn (sigma <= 0 or LRS reaching 0 ohm): {invalid:.2g} of devices")
    typer.echo(f"VAR order p = {m.var_order}, companion spectral radius {var_spectral_radius(m.var_lags):.4f}")
    typer.echo(f"MA order J = {j}: stationary variance kept "
               + ", ".join(f"{f} {k:.3f}" for f, k in zip(m.features, kept)))
    typer.echo(f"U0 = {m.u0} V, Umax = {m.umax} V, eta = {m.eta}; G_LLRS = {g_l:.4g} S, G_HHRS = {g_h:.4g} S")
    if m.provenance:
        typer.echo(f"source: {m.provenance.get('source', '-')}")


@model_app.command("plots")
def plots_command(
    output_dir: Path = typer.Option(..., "-o", "--output-dir", help="folder for the PNG files"),
    model: Optional[Path] = typer.Option(None, "--model", help="model JSON (default: the shipped default model)"),
    devices: int = typer.Option(32, "--devices", min=1),
    cycles: int = typer.Option(300, "--cycles", min=1),
    seed: int = typer.Option(0, "--seed", min=0, max=2**31 - 1),
) -> None:
    """Synthesize data and draw I–V loops, R vs cycle and feature histograms vs the model."""
    from cosim.device.modelfile import load_model
    from cosim.device.plots import (
        plot_feature_histograms,
        plot_iv_loops,
        plot_resistance_vs_cycle,
    )
    from cosim.fileio import save_figure_atomic
    from cosim.device.synth import synth_cycles, synth_iv
    from cosim.commands._guard import check_output_folder
    from cosim.paths import DEFAULT_MODEL

    check_output_folder(output_dir, "--output-dir")
    m = load_model(model or DEFAULT_MODEL)
    from cosim.commands._progress import working

    with working(f"synthesizing {devices} devices × {cycles} cycles and drawing figures"):
        table = synth_cycles(m, devices, cycles, seed)
        iv = synth_iv(m, min(devices, 2), min(cycles, 5), seed)
        written = [
            save_figure_atomic(output_dir / "iv_loops.png", plot_iv_loops(iv)),
            save_figure_atomic(output_dir / "resistance_vs_cycle.png",
                               plot_resistance_vs_cycle(table, devices=range(min(devices, 8)))),
            save_figure_atomic(output_dir / "feature_histograms.png",
                               plot_feature_histograms(table, m, seed=seed + 1)),
        ]
    for path in written:
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    """Attach the device-model commands to the main CLI."""
    app.command("synth")(synth_command)
    app.add_typer(model_app, name="model")
