"""SPICE-safe rendering: every injection form is refused; netlists carry KLU and one thread."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosim.errors import NetlistError
from cosim.spice.render import (
    check_netlist_settings,
    environment,
    format_number,
    ident,
    node,
    path,
    render,
    render_netlist,
    title,
)

CARD = "R{{ name | ident }} {{ a | node }} {{ b | node }} {{ value }}\n"


def render_card(**context: object) -> str:
    return environment().from_string(CARD).render(**context)


INJECTIONS = [
    pytest.param("r1\n.control\nshell rm -rf ~\n.endc", id="newline-control-shell"),
    pytest.param("r1\n", id="trailing-newline"),
    pytest.param("r1\r.endc", id="carriage-return"),
    pytest.param("r1\u2028shell", id="unicode-line-separator"),
    pytest.param(".control", id="dot-card"),
    pytest.param("shell rm", id="shell-command"),
    pytest.param("r1;shell", id="semicolon"),
    pytest.param("r1 $ comment", id="dollar-comment"),
    pytest.param('r"1', id="double-quote"),
    pytest.param("r'1", id="single-quote"),
    pytest.param("r1{x}", id="braces"),
    pytest.param("a=b", id="equals"),
    pytest.param("x.y", id="dot"),
    pytest.param("", id="empty"),
    pytest.param("a" * 65, id="too-long"),
]


@pytest.mark.parametrize("attack", INJECTIONS)
def test_identifier_attacks_are_refused(attack: str) -> None:
    with pytest.raises(NetlistError, match="invalid identifier"):
        ident(attack)
    with pytest.raises(NetlistError):
        render_card(name=attack, a="in", b="0", value=1.0)


@pytest.mark.parametrize("attack", INJECTIONS)
def test_node_attacks_are_refused(attack: str) -> None:
    with pytest.raises(NetlistError, match="invalid node name"):
        node(attack)


@pytest.mark.parametrize("value", [
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
    pytest.param(-math.inf, id="minus-inf"),
    pytest.param(np.float64("nan"), id="numpy-nan"),
    pytest.param(True, id="bool-true"),
    pytest.param(False, id="bool-false"),
    pytest.param(np.bool_(True), id="numpy-bool"),
    pytest.param("1k", id="string-with-suffix"),
    pytest.param("1\n.control", id="string-newline"),
    pytest.param(None, id="none"),
    pytest.param(1 + 2j, id="complex"),
    pytest.param([1.0], id="list"),
])
def test_bad_numbers_are_refused(value: object) -> None:
    with pytest.raises(NetlistError):
        format_number(value)
    with pytest.raises(NetlistError):
        render_card(name="r1", a="in", b="0", value=value)


@pytest.mark.parametrize("attack", [
    "relative/model.osdi",
    "/tmp/a b.osdi",
    "/tmp/m.osdi\n.endc\nshell id",
    "/tmp/m.osdi\n",
    "/tmp/m.osdi;shell",
    '/tmp/"m".osdi',
    "/tmp/$HOME.osdi",
    "",
])
def test_path_attacks_are_refused(attack: str) -> None:
    with pytest.raises(NetlistError, match="invalid path"):
        path(attack)
    with pytest.raises(NetlistError):
        render_netlist("base.cir.j2", title="t", osdi_files=[attack])


@pytest.mark.parametrize("attack", ["ok\n.control", "ok\n", "semi;colon", "quote'", "x\tshell"])
def test_title_attacks_are_refused(attack: str) -> None:
    with pytest.raises(NetlistError, match="invalid title"):
        title(attack)


@pytest.mark.parametrize("value", ["r1", "hello world", None, [1, 2], {"a": 1}, b"r1"])
def test_unfiltered_non_numbers_are_refused(value: object) -> None:
    with pytest.raises(NetlistError, match="unchecked value"):
        environment().from_string("{{ v }}").render(v=value)


def test_safe_values_render() -> None:
    card = render_card(name="load_1", a="n_out", b=0, value=np.float64(2.5e3))
    assert card == "Rload_1 n_out 0 2500.0\n"
    assert node(np.int64(7)) == "7"
    assert path("/abs/dir/model-1.2_x.osdi") == "/abs/dir/model-1.2_x.osdi"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_survive_the_netlist_to_twelve_digits(value: float) -> None:
    text = format_number(value)
    assert float(text) == pytest.approx(value, rel=5e-12, abs=0.0) or float(text) == value
    assert float(format_number(float(text))) == float(text)  # printing is idempotent


def test_integers_stay_integers() -> None:
    assert format_number(3) == "3" and format_number(np.int32(-4)) == "-4"
    assert format_number(0.1, digits=3) == "0.1"


def test_base_template_carries_klu_and_one_thread(tmp_path) -> None:
    osdi = tmp_path / "m.osdi"
    text = render_netlist("base.cir.j2", title="check", osdi_files=[osdi])
    lines = text.splitlines()
    assert ".options klu" in lines and "set num_threads=1" in lines
    assert f"pre_osdi {osdi}" in lines
    control = lines.index(".control")
    assert lines.index("set num_threads=1") > control and lines.index(".endc") > control
    assert lines[-1] == ".end"


@pytest.mark.parametrize(("text", "missing"), [
    ("* t\nset num_threads=1\n.end\n", ".options klu"),
    ("* t\n.options klu\n.end\n", "set num_threads=1"),
    ("* t\n.options kluge\nset num_threads=1\n", ".options klu"),
    ("* t\n.options klu\nset num_threads=8\n", "set num_threads=1"),
    ("* .options klu\nset num_threads=1\n", ".options klu"),
])
def test_settings_check_refuses_netlists_without_them(text: str, missing: str) -> None:
    with pytest.raises(NetlistError, match=f"lacks {missing}"):
        check_netlist_settings(text, "x.cir")


def test_settings_check_accepts_extra_options() -> None:
    check_netlist_settings("* t\n.options reltol=1e-6 KLU gmin=1e-15\nset num_threads = 1\n")


def test_missing_template_and_variable_are_clear_errors() -> None:
    with pytest.raises(NetlistError, match="template not found: nope.j2"):
        render("nope.j2")
    with pytest.raises(NetlistError, match="osdi_files"):
        render_netlist("base.cir.j2", title="t")
