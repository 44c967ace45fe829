"""Sweep files: expansion into jobs, stable ids, and errors that name the file and field."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from cosim.batch.config import SweepConfigError, job_id, load_sweep, parse_sweep
from cosim.paths import DATA_DIR

BASE = """
name = "t"
kind = "crossbar_ideal_nf"
seeds = [3, 4]
[grid]
rows = [4, 8]
r_wire = [0.5, 1.0, 2.0]
[fixed]
cols = 4
"""


def _parse(text: str, name: str = "sweep.toml") -> object:
    return parse_sweep(text, Path(name))


def test_example_sweep_expands_to_grid_times_seeds() -> None:
    sweep = load_sweep(DATA_DIR / "sweeps" / "example.toml")
    grid = sweep.config.grid
    assert sweep.config.kind == "crossbar_nf"
    assert len(sweep.jobs) == len(grid["r_wire"]) * len(grid["size"]) * len(grid["mdm"]) * 4 >= 20
    seen = {(j.params["r_wire"], j.params["size"], j.params["mdm"], j.seed) for j in sweep.jobs}
    expected = set(itertools.product(grid["r_wire"], grid["size"], grid["mdm"], range(1000, 1004)))
    assert seen == expected
    assert all(j.params["devices"] == "programmed" and j.params["matrix"] == "block" for j in sweep.jobs)


def test_job_ids_are_stable_unique_and_independent_of_key_order() -> None:
    a = _parse(BASE)
    reordered = BASE.replace(
        'name = "t"\nkind = "crossbar_ideal_nf"', 'kind = "crossbar_ideal_nf"\nname = "other"'
    )
    reordered = reordered.replace("[fixed]\ncols = 4", "[fixed]\ncols = 4\nn_inputs = 8")
    b = _parse(reordered)  # n_inputs = 8 is the default: same validated parameters
    assert [j.id for j in a.jobs] == [j.id for j in b.jobs]
    assert len({j.id for j in a.jobs}) == len(a.jobs) == 12
    job = a.jobs[0]
    assert job.id == job_id(job.kind, dict(reversed(list(job.params.items()))), job.seed)
    assert job.id != job_id(job.kind, job.params, job.seed + 1)


def test_seed_count_and_base_equal_an_explicit_list() -> None:
    ranged = _parse(BASE.replace("seeds = [3, 4]", "seeds = { count = 2, base = 3 }"))
    listed = _parse(BASE)
    assert [j.id for j in ranged.jobs] == [j.id for j in listed.jobs]
    assert ranged.resolved()["seeds"] == [3, 4]


def test_changed_grid_changes_fingerprint() -> None:
    assert _parse(BASE).fingerprint() == _parse(BASE).fingerprint()
    assert _parse(BASE).fingerprint() != _parse(BASE.replace("[4, 8]", "[4, 16]")).fingerprint()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("[grid]", "grdi = 1\n[grid]"), r"sweep.toml: field 'grdi': Extra inputs"),
        (("seeds = [3, 4]", 'seeds = [3, 4]\ntimeout_s = "long"'), r"field 'timeout_s'"),
        (("seeds = [3, 4]", "seeds = [3, 4]\nretries = -1"), r"field 'retries'"),
        (("r_wire = [0.5, 1.0, 2.0]", "r_wire = []"), r"field 'grid'.*'r_wire'.*empty"),
        (("cols = 4", "cols = 4\nrows = 2"), r"both in \[grid\] and \[fixed\]"),
        (("cols = 4", "cols = 4\nseed = 2"), r"'seed' is reserved"),
        (("seeds = [3, 4]", "seeds = [3, 3]"), r"field 'seeds'.*repeats"),
        (("r_wire = [0.5, 1.0, 2.0]", 'r_wire = [0.5, "x"]'), r"'r_wire' mixes number and text"),
        (('kind = "crossbar_ideal_nf"', 'kind = "nope"'), r"field 'kind'.*unknown job kind 'nope'"),
        (("rows = [4, 8]", "rows = [4, 0]"), r"grid point \(rows=0.*field 'rows'.*greater than"),
        (("cols = 4", "cols = 4\nwires = 3"), r"field 'wires'.*Extra inputs"),
        (("seeds = [3, 4]", 'seeds = [3, 4]\nfiles = ["missing.cir"]'), r"'files'.*missing.cir"),
        (("rows = [4, 8]", "rows = [4, 8"), r"sweep.toml: invalid TOML.*line"),
    ],
)
def test_bad_sweep_files_name_the_file_and_field(edit: tuple[str, str], expected: str) -> None:
    text = BASE.replace(*edit)
    assert text != BASE
    with pytest.raises(SweepConfigError, match=expected):
        _parse(text)


def test_missing_sweep_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SweepConfigError, match="nothere.toml: cannot read"):
        load_sweep(tmp_path / "nothere.toml")


def test_declared_files_are_resolved_and_listed(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text("{}", encoding="utf-8")
    path = tmp_path / "s.toml"
    text = BASE.replace("seeds = [3, 4]", 'seeds = [3, 4]\nfiles = ["model.json"]')
    path.write_text(text, encoding="utf-8")
    assert load_sweep(path).declared_files() == [(tmp_path / "model.json").resolve()]
    divider = tmp_path / "d.toml"
    divider.write_text('name = "d"\nkind = "ngspice_divider"\n', encoding="utf-8")
    assert [p.name for p in load_sweep(divider).declared_files()] == ["batch_divider.cir.j2"]
