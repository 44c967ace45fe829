"""`cosim fit`: fit the device model to a measurement CSV (cycle table or raw I–V loops)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


def fit_command(
    input_csv: Path = typer.Argument(..., help="Measurement CSV: cycle table or raw I–V loops."),
    output: Path = typer.Option(..., "-o", "--output", help="Model file (JSON) to write."),
    report: Optional[Path] = typer.Option(None, "--report",
                                          help="Folder for the validation report."),
    fmt: str = typer.Option("auto", "--format", help="auto | cycles | iv"),
    seed: int = typer.Option(0, "--seed", help="Seed of the mixture fit and of the model "
                                               "draws in the report."),
    gamma_degree: int = typer.Option(4, "--gamma-degree", min=1, max=4,
                                     help="Degree of the Γ polynomials."),
    max_order: int = typer.Option(10, "--max-order", min=1, max=50,
                                  help="Largest VAR order tried."),
    ic: str = typer.Option("aic", "--ic", help="aic | bic | hqic: picks the VAR order."),
    var_order: Optional[int] = typer.Option(None, "--var-order", min=1, max=50,
                                            help="Force this VAR order."),
    max_components: int = typer.Option(4, "--max-components", min=1, max=10,
                                       help="Largest number of D2D mixture components."),
    u0: float = typer.Option(0.2, "--u0", help="Read voltage U0 in V."),
    hrs_read: str = typer.Option(
        "after-reset", "--hrs-read", help="Which HRS a cycle-table row holds: after-reset "
                                          "(read after the row's RESET, as testers and `cosim "
                                          "synth` write it) or before-set."),
    base_model: Optional[Path] = typer.Option(
        None, "--base-model", help="Model that supplies the I–V basis, η and Umax when the "
                                   "input is a cycle table (default: the shipped default)."),
) -> None:
    """Fit the generative device model to IN.csv and write MODEL.json (and a report)."""
    _run(input_csv, output, report, fmt, seed, gamma_degree, max_order, ic, var_order,
         max_components, u0, hrs_read, base_model)


def _run(input_csv: Path, output: Path, report: Optional[Path], fmt: str, seed: int,
         gamma_degree: int, max_order: int, ic: str, var_order: Optional[int],
         max_components: int, u0: float, hrs_read: str, base_model: Optional[Path]) -> None:
    from cosim.commands._guard import check_output_file, check_output_folder
    from cosim.device.modelfile import load_model, save_model
    from cosim.errors import CosimError
    from cosim.fit.extract import ExtractConfig
    from cosim.commands._progress import working
    from cosim.fit.fit import FitConfig, FitError, fit_file
    from cosim.fit.report import write_failed_report, write_report

    # every output is checked before the (long) fit, so nothing is written and then refused
    check_output_file(output)
    if report is not None:
        check_output_folder(report, "--report")
        if report.resolve() == output.resolve():
            raise CosimError(f"--report {report} and --output {output} are the same path")

    if not 0 <= seed <= 2**31 - 1 - 16:  # restarts use seed, seed + 1, ...
        raise CosimError(f"--seed must be in 0..{2**31 - 17} (got {seed})")
    if fmt not in ("auto", "cycles", "iv"):
        raise CosimError(f"--format must be auto, cycles or iv (got {fmt!r})")
    if ic not in ("aic", "bic", "hqic"):
        raise CosimError(f"--ic must be aic, bic or hqic (got {ic!r})")
    if not u0 > 0:
        raise CosimError("--u0 must be positive")
    if hrs_read not in ("after-reset", "before-set"):
        raise CosimError(f"--hrs-read must be after-reset or before-set (got {hrs_read!r})")
    config = FitConfig(gamma_degree=gamma_degree, max_var_order=max_order, ic=ic,  # type: ignore[arg-type]
                       var_order=var_order, max_components=max_components, seed=seed,
                       hrs_read=hrs_read.replace("-", "_"),  # type: ignore[arg-type]
                       extract=ExtractConfig(u0=u0))
    base = load_model(base_model) if base_model is not None else None
    try:
        with working(f"reading, checking and fitting {input_csv}"):
            result = fit_file(input_csv, fmt, config, base)  # type: ignore[arg-type]
    except FitError as exc:
        message = str(exc) if str(exc).startswith(str(input_csv)) else f"{input_csv}: {exc}"
        if report is not None:  # the QC findings explain the failure: keep them
            path = write_failed_report(exc.qc, report, str(exc), str(input_csv))
            message += f" (QC report: {path})"
        raise CosimError(message) from None
    save_model(result.model, output)
    m = result.model
    typer.echo(f"wrote {output}: {result.device_stats.shape[0]} devices, {len(result.table)} "
               f"cycles, VAR({m.var_order}), K={m.n_components}, "
               f"{len(result.qc)} QC entries")
    if report is not None:
        with working(f"writing the report to {report} (model draws, statistics, figures)"):
            path = write_report(result, report, seed=seed, model_path=str(output))
        typer.echo(f"report: {path}")
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add `cosim fit` to the CLI."""
    app.command("fit")(fit_command)
