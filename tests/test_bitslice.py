"""Bit-sliced crossbars, tiling, the paper's MDM (drivers on the low-order side, Manhattan row
order) and NF on a trained network's own activations (small tiles; the 128×128 study is
benchmarks/mdm_bitslice_study.py)."""

from __future__ import annotations

import functools
import itertools
import json
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.crossbar.bitslice import InputEncoding, SliceConfig, SlicedMatrix, quantize
from cosim.crossbar.mdm import manhattan_cost, sliced_remap
from cosim.crossbar.tiled import Layer, SlicedStudy, TiledReader, Wires, forward, mlp_accuracy
from cosim.errors import CosimError


def sparse_weights(rows: int, cols: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.laplace(size=(rows, cols)) * (rng.random((rows, cols)) < 0.7)


def relu_inputs(count: int, rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.standard_normal((count, rows)) + rng.normal(0, 1, rows), 0.0)


@functools.lru_cache(maxsize=1)
def digits_mlp() -> tuple[list[Layer], np.ndarray, np.ndarray]:
    """A small scikit-learn MLP trained on digits (seeded), its layers and 60 test digits."""
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, random_state=0).fit(x[:1200], y[:1200])
    layers = [Layer(w, b) for w, b in zip(net.coefs_, net.intercepts_)]
    return layers, x[1200:1260], y[1200:1260]


@pytest.mark.parametrize("signed", ["differential", "offset"])
@pytest.mark.parametrize("slice_bits", [1, 2])
@pytest.mark.parametrize("encoding", ["analog", "bit-serial"])
def test_wire_free_shift_and_add_is_the_quantized_product(signed, slice_bits, encoding):
    weights, x = sparse_weights(20, 7, 1), relu_inputs(5, 20, 2) - 0.3  # some negative inputs
    config = SliceConfig.from_on_off(10, weight_bits=8, slice_bits=slice_bits, signed=signed)
    matrix = SlicedMatrix.from_weights(weights, config, tile_rows=8, tile_cols=16)
    reader = TiledReader(matrix, Wires(1.0), InputEncoding(encoding, input_bits=8))
    x_max = reader.x_max(x)
    got, _ = reader.read(x, x_max, ideal=True)
    q, scale = quantize(weights, 8)
    if encoding == "bit-serial":  # the inputs are quantized too: 8 bits of x_max, sign kept
        x = np.sign(x) * np.round(np.abs(x) / x_max * 255) * x_max / 255
    np.testing.assert_allclose(got, x @ (q * scale), rtol=1e-11, atol=1e-12 * np.abs(x @ (q * scale)).max())
    assert len({t.row_start for t in matrix.tiles}) == 3  # 20 rows in tiles of 8
    assert all(t.shape[1] <= 16 for t in matrix.tiles)


def test_bits_and_levels_of_the_cells():
    config = SliceConfig.from_on_off(20, weight_bits=8, slice_bits=1)
    weights = np.array([[127.0, -1.0, 0.0], [5.0, -64.0, 3.0]])
    matrix = SlicedMatrix.from_weights(weights, config, 2, 14)
    tile = matrix.tiles[0]
    assert config.n_slices == 7 and tile.shape == (2, 14)  # one output (7 pairs) per tile
    np.testing.assert_array_equal(matrix.q, weights.astype(int))
    # weight 127 → 1111111 in the G⁺ columns (even), nothing in G⁻; zero bits stay at G_off
    assert np.allclose(tile.g[0, 0::2], config.g_on) and np.allclose(tile.g[0, 1::2], config.g_off)
    assert np.allclose(tile.g[1, 0::2], [config.g_off] * 4 + [config.g_on, config.g_off, config.g_on])  # 5 = 101
    zero = matrix.tiles[2]  # third output: 0 and 3 → the zero weight leaves its row in HRS
    assert np.allclose(zero.g[0], config.g_off) and zero.ones(config.g_off)[1].sum() == 2
    two = SliceConfig.from_on_off(10, weight_bits=8, slice_bits=2)
    assert two.n_slices == 4 and np.array_equal(two.slice_values(np.array(45))[...], [0, 2, 3, 1])
    with pytest.raises(CosimError, match="slice bits"):
        SliceConfig(slice_bits=5)
    with pytest.raises(CosimError, match="ON/OFF"):
        SliceConfig.from_on_off(0.5)
    with pytest.raises(CosimError, match="too small"):
        SlicedMatrix.from_weights(weights, config, 8, 8)


def test_brute_force_confirms_the_row_order_minimises_the_manhattan_cost():
    config = SliceConfig.from_on_off(10, weight_bits=4, slice_bits=1)
    matrix = SlicedMatrix.from_weights(sparse_weights(7, 1, 5), config, 7, 6)
    tile = matrix.tiles[0]
    mean = np.abs(relu_inputs(16, 7, 6)).mean(axis=0) * 0.05
    load = tile.g * mean[:, None]
    remap = sliced_remap(load, differential=True, columns="flip")
    # drivers on the low-order side: the least significant pair sits next to the drivers
    assert list(tile.slice_of_column[remap.col_order][:2]) == [0, 0]
    assert np.all(remap.col_order[1::2] == remap.col_order[0::2] + 1)  # pairs stay (G⁺, G⁻)
    placed = load[:, remap.col_order]
    best = manhattan_cost(placed[remap.row_order])
    costs = [manhattan_cost(placed[list(order)]) for order in itertools.permutations(range(7))]
    assert best <= min(costs) * (1 + 1e-12)
    assert best < np.median(costs)
    # the analog variant on slices ("sorted"): rows and pairs jointly minimal over all orders
    small = load[:5, :6]
    exact = sliced_remap(small, differential=True, columns="sorted")
    optimum = manhattan_cost(small[np.ix_(exact.row_order, exact.col_order)])
    for rows in itertools.permutations(range(5)):
        for pairs in itertools.permutations(range(3)):
            cols = np.array([[2 * p, 2 * p + 1] for p in pairs]).ravel()
            assert optimum <= manhattan_cost(small[np.ix_(rows, cols)]) * (1 + 1e-12)


def test_mdm_keeps_the_wire_free_output_bit_for_bit_and_lowers_nf_on_real_activations():
    layers, x, _ = digits_mlp()
    acts = forward(layers, x)
    config = SliceConfig.from_on_off(10, weight_bits=8, slice_bits=1)
    reader = TiledReader(SlicedMatrix.from_weights(layers[0].weights, config, 32, 32), Wires(2.5))
    study = reader.study(acts[0])
    placed = reader.remaps(acts[0], study.x_max)
    plain, _ = reader.read(acts[0], study.x_max, ideal=True)
    mapped, _ = reader.read(acts[0], study.x_max, placed, ideal=True)
    assert np.array_equal(plain, mapped)  # the mapping is undone exactly
    assert all(t.ideal_unchanged for t in study.tiles)
    summary = study.as_dict()
    assert len(summary["tiles"]) == 2 * 16  # 64 rows / 32 × 32 outputs / 2 per 32-column tile
    assert summary["nf_after"] < summary["nf_before"]
    assert summary["nf_reduction_mean_over_tiles"] > 0.05
    assert all(t.cost_after <= t.cost_before * (1 + 1e-12) for t in study.tiles)
    assert summary["output_error_after"] < summary["output_error_before"]


def test_accuracy_under_wires_with_and_without_mdm_uses_the_same_cells():
    layers, x, y = digits_mlp()
    config = SliceConfig.from_on_off(10, weight_bits=8, slice_bits=1)
    readers = [TiledReader(SlicedMatrix.from_weights(layer.weights, config, 32, 32), Wires(2.5)) for layer in layers]
    result = mlp_accuracy(layers, readers, x, x, y)
    assert result["accuracy_float"] > 0.8
    assert abs(result["accuracy_quantized_wire_free"] - result["accuracy_float"]) <= 0.05
    assert 0 <= result["accuracy_wires"] <= 1 and 0 <= result["accuracy_wires_mdm"] <= 1
    transfers = readers[0]._transfers
    assert len(transfers) == 2 * len(readers[0].matrix.tiles)  # as mapped and with MDM, each once


def test_ngspice_and_programmed_devices_agree_with_the_nodal_solver():
    config = SliceConfig.from_on_off(10, weight_bits=4, slice_bits=1)
    matrix = SlicedMatrix.from_weights(sparse_weights(6, 1, 3), config, 6, 6)
    x = relu_inputs(2, 6, 4)
    nodal = TiledReader(matrix, Wires(2.0))
    spice = TiledReader(matrix, Wires(2.0), backend="ngspice")
    a, b = nodal.study(x), spice.study(x)
    np.testing.assert_allclose(b.before, a.before, rtol=1e-6)
    np.testing.assert_allclose(b.after, a.after, rtol=1e-6)
    assert b.tiles[0].before.tile_nf == pytest.approx(a.tiles[0].before.tile_nf, rel=1e-5)
    programmed = TiledReader(matrix, Wires(2.0), devices="programmed", device_seed=3)
    again = TiledReader(matrix, Wires(2.0), devices="programmed", device_seed=3)
    np.testing.assert_array_equal(programmed.stored[0], again.stored[0])  # seeded devices
    error = np.abs(programmed.stored[0] / matrix.tiles[0].g - 1)
    assert np.median(error) < 0.05 and not np.array_equal(programmed.stored[0], matrix.tiles[0].g)
    result = programmed.study(x)
    assert result.tiles[0].ideal_unchanged and result.tiles[0].before.tile_nf > 0


def test_mdm_command_bit_sliced_json(tmp_path):
    layers, x, y = digits_mlp()
    np.save(tmp_path / "w.npy", layers[0].weights[:, :6])
    np.save(tmp_path / "x.npy", x[:12])
    out = tmp_path / "r.json"
    args = ["mdm", "--weights", str(tmp_path / "w.npy"), "--inputs", str(tmp_path / "x.npy"), "--weight-bits", "8",
            "--slice-bits", "1", "--on-off", "10", "--tile", "32", "--r-wire", "2.5", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert len(data["tiles"]) == 2 * 3 and data["on_off"] == pytest.approx(10)
    assert data["nf_before"] == pytest.approx(np.mean([t["nf_before"] for t in data["tiles"]]))
    assert data["nf_after"] == pytest.approx(np.mean([t["nf_after"] for t in data["tiles"]]))
    assert data["ideal_unchanged"] is True and "NF (mean over tiles)" in result.output
    np.save(tmp_path / "bad.npy", x[:3, :10])
    failed = CliRunner().invoke(app, args[:3] + ["--inputs", str(tmp_path / "bad.npy"), "--weight-bits", "8"])
    assert failed.exit_code == 2 and "bad.npy" in failed.output and "Traceback" not in failed.output


def test_mdm_command_accuracy_of_a_trained_network(tmp_path):
    layers, x, y = digits_mlp()
    arrays = {f"W{k}": layer.weights for k, layer in enumerate(layers)} | {f"b{k}": l.bias for k, l in enumerate(layers)}
    np.savez(tmp_path / "net.npz", **arrays)
    np.save(tmp_path / "x.npy", x[:20])
    np.save(tmp_path / "y.npy", y[:20])
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["mdm", "--mlp", str(tmp_path / "net.npz"), "--inputs", str(tmp_path / "x.npy"),
                                      "--labels", str(tmp_path / "y.npy"), "--tile", "32", "--on-off", "10", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert {t["layer"] for t in data["tiles"]} == {0, 1}
    for key in ("accuracy_float", "accuracy_wires", "accuracy_wires_mdm"):
        assert 0 <= data[key] <= 1
    assert "accuracy:" in result.output


def test_analog_tiles_report_nf_per_tile():
    from cosim.crossbar.mdm import analog_tiles, random_inputs, random_weights

    weights = random_weights(24, 12, 0, seed=2)
    report = analog_tiles(weights, random_inputs(24, 6, 0.2, seed=3), tile=16, r_wire=2.0)
    assert len(report["tiles"]) == 2 * 2  # 24 rows → 16 + 8; 12 outputs → 8 + 4 pairs
    assert report["nf_before"] == pytest.approx(np.mean([t["nf_before"] for t in report["tiles"]]))
    single = analog_tiles(weights, random_inputs(24, 6, 0.2, seed=3))
    assert len(single["tiles"]) == 1 and "row_order" in single


def test_gain_compensation_of_bit_sliced_tiles():
    layers, x, y = digits_mlp()
    config = SliceConfig.from_on_off(10, weight_bits=8, slice_bits=1)
    readers = [TiledReader(SlicedMatrix.from_weights(layer.weights, config, 32, 32), Wires(2.5)) for layer in layers]
    result = mlp_accuracy(layers, readers, x, x, y, compensation=True, settings=("ideal", "plain"))
    assert set(result) == {"accuracy_quantized_wire_free", "accuracy_wires", "accuracy_wires_gain", "accuracy_wires_mdm_gain"}
    gains = readers[0].column_gains(0)
    assert gains.shape == (readers[0].matrix.tiles[0].shape[1],) and np.all(gains >= 1.0)  # wires only attenuate
    assert abs(result["accuracy_wires_gain"] - result["accuracy_quantized_wire_free"]) <= 0.1
    assert abs(result["accuracy_wires_mdm_gain"] - result["accuracy_quantized_wire_free"]) <= 0.1
    reader, x_max = readers[0], readers[0].x_max(x)
    ideal, _ = reader.read(x, x_max, ideal=True)
    raw, _ = reader.read(x, x_max)
    fixed, _ = reader.read(x, x_max, gain=True)
    assert np.abs(fixed - ideal).sum() < 0.5 * np.abs(raw - ideal).sum()  # the wires' gain is most of the error
    failed = CliRunner().invoke(app, ["mdm", "--weight-bits", "8", "--rows", "8", "--cols", "2", "--compensation", "predistort"])
    assert failed.exit_code == 2 and "predistort" in failed.output


@pytest.mark.parametrize("extra, needle", [
    (["--devices", "programmed"], "--devices applies to bit-sliced weights only"),
    (["--backend", "ngspice"], "--backend applies to bit-sliced weights only"),
    (["--on-off", "10"], "--on-off applies to bit-sliced weights only"),
    (["--labels", "y.npy"], "--labels are the classes of --inputs for --mlp"),
    (["--weight-bits", "4", "--compensation", "gain"], "needs --mlp, --inputs and --labels"),
    (["--compensation", "gain,bogus"], "--compensation 'gain,bogus': compensation method 'bogus' unknown"),
])
def test_mdm_refuses_flags_it_would_ignore(extra, needle):
    """These flags used to be dropped without a word (e.g. --devices programmed gave ideal cells)."""
    result = CliRunner().invoke(app, ["mdm", "--rows", "8", "--cols", "4", *extra])
    assert result.exit_code == 2 and needle in result.output and "Traceback" not in result.output
    assert "NF" not in result.output  # refused before any work


def test_mdm_bit_sliced_output_has_no_stray_line_and_vectors_are_checked():
    """Off a terminal the transient progress bar left an empty line before the report or the
    error; --vectors 0 was reported as "every tile is idle"."""
    bad = CliRunner().invoke(app, ["mdm", "--rows", "8", "--cols", "2", "--weight-bits", "1"])
    assert bad.exit_code == 2 and bad.output.startswith("error: weight bits must be between 2 and 16")
    good = CliRunner().invoke(app, ["mdm", "--rows", "8", "--cols", "2", "--weight-bits", "4", "--vectors", "2"])
    assert good.exit_code == 0 and good.output.startswith("matrix: dense Gaussian 8x2")
    for extra in ([], ["--weight-bits", "4"]):
        none = CliRunner().invoke(app, ["mdm", "--rows", "8", "--cols", "2", "--vectors", "0", *extra])
        assert none.exit_code == 2 and "--vectors must be at least 1, got 0" in none.output


def test_mdm_bad_network_and_label_files_give_one_error_line(tmp_path):
    """A .npy or a corrupt file as --mlp, or inputs of the wrong width, used to end in a
    traceback (TypeError, BadZipFile, a matmul shape error)."""
    np.savez(tmp_path / "net.npz", W0=np.ones((6, 3)), b0=np.zeros(3))
    np.save(tmp_path / "one.npy", np.ones((6, 3)))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04not a zip")
    np.save(tmp_path / "x.npy", np.ones((4, 6)))
    np.save(tmp_path / "x5.npy", np.ones((4, 5)))
    p = lambda name: str(tmp_path / name)  # noqa: E731
    cases = [
        (["--mlp", p("one.npy"), "--inputs", p("x.npy")], "one array; the network is a .npz archive"),
        (["--mlp", p("broken.npz"), "--inputs", p("x.npy")], "broken.npz: cannot read the network: not a NumPy"),
        (["--mlp", p("net.npz"), "--inputs", p("x5.npy")], "x5.npy: 5 inputs per vector, the network's W0 has 6 rows"),
        (["--mlp", p("net.npz"), "--inputs", p("x.npy"), "--labels", p("net.npz")], "labels are one .npy array"),
    ]
    for args, needle in cases:
        result = CliRunner().invoke(app, ["mdm", *args])
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert needle in result.output and "Traceback" not in result.output
