"""What a netlist may make each simulator backend do (see docs/security.md).

Every test plants a command that would create a marker file if ngspice ever ran it: through a
backquote in an allowed ``set`` line, a ``*#`` comment, an included file's ``.control`` block, a
``.lib`` section, or a ``.spiceinit`` next to the netlist or in the working directory. The
in-process backend must refuse the netlist (or ignore ``.spiceinit``); the batch backend and
the toolchain probes must never read a ``.spiceinit``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cosim.errors import NetlistError
from cosim.spice.batch import run_batch
from cosim.spice.pyspice_backend import close_shared_worker, prepare_netlist, run_pyspice

CIRCUIT = "V1 a 0 1\nR1 a b 1k\nR2 b 0 3k\n.op\n.end\n"


def _marker(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


def _shell(tmp_path: Path) -> str:
    return f"shell touch {_marker(tmp_path)}"


@pytest.mark.parametrize(
    "line",
    [
        "set x = `touch {marker}`",
        "set x=1`touch {marker}`",
        "option x = `touch {marker}`",
        "set x = 1 > {marker}",
        "set x = $y",
        "set x = !!",
    ],
)
def test_set_lines_with_substitutions_or_redirections_are_refused(tmp_path: Path, line: str) -> None:
    text = f"* t\n.control\n{line.format(marker=_marker(tmp_path))}\n.endc\n{CIRCUIT}"
    with pytest.raises(NetlistError, match="line 3"):
        prepare_netlist(text)
    with pytest.raises(NetlistError):
        run_pyspice(text, timeout_s=60)
    assert not _marker(tmp_path).exists()


def test_plain_set_and_option_lines_still_pass() -> None:
    text = f"* t\n.control\nset num_threads=1\nset ngbehavior = hsa\noption reltol=1e-6\n.endc\n{CIRCUIT}"
    assert prepare_netlist(text).commands == [
        "set num_threads=1", "set ngbehavior = hsa", "option reltol=1e-6"
    ]


def test_star_hash_comment_commands_are_refused(tmp_path: Path) -> None:
    text = f"* t\n*# {_shell(tmp_path)}\n{CIRCUIT}"
    with pytest.raises(NetlistError, match=r"line 2.*\*#"):
        run_pyspice(text, timeout_s=60)
    assert not _marker(tmp_path).exists()


def test_ng_script_decks_and_command_titles_are_refused() -> None:
    with pytest.raises(NetlistError, match="ng_script"):
        prepare_netlist(f"*ng_script\n{CIRCUIT}")
    with pytest.raises(NetlistError, match=r"line 1.*\*#"):
        prepare_netlist(f"*# shell ls\n{CIRCUIT}")


def test_included_control_block_is_refused_and_never_runs(tmp_path: Path) -> None:
    lib = tmp_path / "evil.inc"
    lib.write_text(f"* harmless looking\n.control\n{_shell(tmp_path)}\n.endc\n")
    for card in (f".include {lib}", f".inc '{lib}'", f".include {lib.name}"):
        netlist = tmp_path / "top.cir"
        netlist.write_text(f"* t\n{card}\n{CIRCUIT}")
        with pytest.raises(NetlistError, match=r"evil\.inc.*line 2.*\.control"):
            run_pyspice(netlist, timeout_s=60)
    assert not _marker(tmp_path).exists()


def test_lib_section_with_control_block_is_refused(tmp_path: Path) -> None:
    lib = tmp_path / "models.lib"
    lib.write_text(
        ".lib good\nR9 b 0 1e9\n.endl good\n"
        f".lib bad\n*# {_shell(tmp_path)}\n.endl bad\n"
    )
    top = tmp_path / "top.cir"
    top.write_text(f"* t\n.lib {lib.name} bad\n{CIRCUIT}")
    with pytest.raises(NetlistError, match=r"models\.lib.*line 5"):
        run_pyspice(top, timeout_s=60)
    assert not _marker(tmp_path).exists()


def test_included_files_are_inlined_and_simulated(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "inner.inc").write_text("R2 b 0 3k\n")
    (sub / "outer.inc").write_text("R1 a b\n+ 1k\n.include inner.inc\n")  # relative to outer
    (tmp_path / "models.lib").write_text(".lib typ\nV1 a 0 1\n.endl typ\n.lib fast\nV1 a 0 2\n.endl\n")
    top = tmp_path / "top.cir"
    top.write_text("* t\n.lib models.lib typ\n.include sub/outer.inc\n.op\n.end\n")
    prepared = prepare_netlist(top)
    assert ".include" not in prepared.circuit.lower() and ".lib" not in prepared.circuit.lower()
    assert run_pyspice(top, timeout_s=60)["v(b)"][0] == pytest.approx(0.75, rel=1e-12)


def test_include_loops_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "a.inc").write_text(".include b.inc\n")
    (tmp_path / "b.inc").write_text(".include a.inc\n")
    top = tmp_path / "top.cir"
    top.write_text(f"* t\n.include a.inc\n{CIRCUIT}")
    with pytest.raises(NetlistError, match="includes itself"):
        prepare_netlist(top)
    top.write_text(f"* t\n.include nowhere.inc\n{CIRCUIT}")
    with pytest.raises(NetlistError, match=r"top\.cir.*line 2.*nowhere\.inc"):
        prepare_netlist(top)
    top.write_text(f"* t\n.lib models.lib typ\n{CIRCUIT}")
    (tmp_path / "models.lib").write_text(".lib fast\nR9 a 0 1\n.endl\n")
    with pytest.raises(NetlistError, match="no section 'typ'"):
        prepare_netlist(top)


def test_osdi_paths_with_shell_syntax_are_refused(tmp_path: Path) -> None:
    odd = tmp_path / "x`touch y`.osdi"
    odd.write_text("")
    with pytest.raises(NetlistError, match="line 3"):
        prepare_netlist(f"* t\n.control\npre_osdi {odd}\n.endc\n{CIRCUIT}")


def test_spiceinit_in_the_working_directory_is_not_read_by_the_inprocess_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".spiceinit").write_text(_shell(tmp_path) + "\n")
    monkeypatch.chdir(tmp_path)
    close_shared_worker()  # the next run starts a worker from this folder
    try:
        assert run_pyspice(f"* t\n{CIRCUIT}", timeout_s=60)["v(b)"][0] == pytest.approx(0.75)
    finally:
        close_shared_worker()
    assert not _marker(tmp_path).exists()


def test_spiceinit_beside_the_netlist_or_in_cwd_is_not_read_by_the_batch_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".spiceinit").write_text(_shell(tmp_path) + "\n")
    netlist = tmp_path / "t.cir"
    netlist.write_text(f"* t\n{CIRCUIT}")
    monkeypatch.chdir(tmp_path)
    assert run_batch(netlist, timeout_s=60)["v(b)"][0] == pytest.approx(0.75)
    assert run_batch(f"* t\n{CIRCUIT}", timeout_s=60, cwd=tmp_path)["v(b)"][0] == pytest.approx(0.75)
    assert not _marker(tmp_path).exists()


def test_toolchain_probe_does_not_read_spiceinit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cosim import toolchain

    (tmp_path / ".spiceinit").write_text(_shell(tmp_path) + "\n")
    monkeypatch.chdir(tmp_path)
    toolchain.clear_cache()
    try:
        assert toolchain.find_ngspice().osdi
    finally:
        toolchain.clear_cache()
    assert not _marker(tmp_path).exists()


def test_worker_runs_in_a_private_folder_removed_with_it(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    from cosim.spice.pyspice_backend import NgSpiceWorker

    monkeypatch.chdir(tmp_path)
    worker = NgSpiceWorker()
    try:
        cwd = Path(psutil.Process(worker.pid).cwd())
        assert cwd != tmp_path and cwd == Path(worker.cwd).resolve()
        assert list(cwd.iterdir()) == []
    finally:
        worker.close()
    assert not cwd.exists()


def test_vacask_postprocess_steps_do_not_run(tmp_path: Path) -> None:
    from cosim.spice.vacask import run_vacask

    script = tmp_path / "post.py"
    script.write_text(f"open({str(_marker(tmp_path))!r}, 'w').write('x')\n")
    netlist = tmp_path / "post.sim"
    netlist.write_text(
        'post test\nload "spice/resistor.osdi"\nmodel vsource vsource\nmodel rspice sp_resistor\n'
        "ground 0\nv1 (in 0) vsource dc=1\nr1 (in out) rspice r=1k\nr2 (out 0) rspice r=3k\n"
        'control\n  options rawfile="binary"\n  save default\n  analysis op1 op\n'
        f'  postprocess(PYTHON, "{script}")\nendc\n'
    )
    assert run_vacask(netlist, timeout_s=60)["v(out)"][0] == pytest.approx(0.75)
    assert not _marker(tmp_path).exists()


def test_cosim_doctor_does_not_read_spiceinit(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / ".spiceinit").write_text(_shell(tmp_path) + "\n")
    done = subprocess.run([sys.executable, "-m", "cosim.cli", "doctor"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert "OSDI chain" in done.stdout, done.stderr
    assert not _marker(tmp_path).exists()


def test_a_spiceinit_in_the_account_home_is_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import pwd
    from types import SimpleNamespace

    from cosim.spice import pyspice_backend

    monkeypatch.setattr(pwd, "getpwuid", lambda uid: SimpleNamespace(pw_dir=str(tmp_path)))
    monkeypatch.setattr(pyspice_backend, "_warned_spiceinit", set())
    assert pyspice_backend.user_spiceinit() is None
    (tmp_path / ".spiceinit").write_text("* empty\n")
    assert pyspice_backend.user_spiceinit() == tmp_path / ".spiceinit"
    pyspice_backend._warn_user_spiceinit()
    pyspice_backend._warn_user_spiceinit()
    warnings = [r.getMessage() for r in caplog.records if ".spiceinit" in r.getMessage()]
    assert len(warnings) == 1 and str(tmp_path) in warnings[0]


def test_lib_card_with_a_tab_before_the_section_is_read(tmp_path: Path) -> None:
    """`.lib FILE<TAB>SECTION` was read as one file name 'FILE<TAB>SECTION' (not found)."""
    from cosim.spice.deck import SourceLine, flatten

    lib = tmp_path / "models.lib"
    lib.write_text(".lib fast\nR9 b 0 1k\n.endl fast\n")
    lines = flatten([SourceLine(f".lib {lib.name}\tfast", "", 2)], tmp_path)
    assert [line.text for line in lines] == ["R9 b 0 1k"]
