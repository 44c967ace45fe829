"""The trainable S4D layer uses the project's S4D conventions (cosim.s4d.ideal) exactly."""

from __future__ import annotations

import numpy as np
import pytest

import torch  # the train extra, installed by scripts/setup.sh

from cosim.s4d.ideal import causal_fft_conv, combined_matrices, discretize, real_form, vandermonde_kernel
from cosim.train.model import Architecture, S4DClassifier, S4DCrossbarLayer


@pytest.mark.parametrize("variant", ["full", "delta"])
def test_layer_matrices_and_convolution_match_cosim_s4d_ideal(variant):
    model = S4DClassifier(Architecture(n_inputs=1, n_classes=2, channels=4, state_size=6, layers=1,
                                       variant=variant), seed=1)
    layer = next(module for module in model.modules() if isinstance(module, S4DCrossbarLayer))
    with torch.no_grad():  # non-trivial read-out so that C and D enter the comparison
        generator = torch.Generator().manual_seed(5)
        layer.C_re.copy_(torch.randn(layer.C_re.shape, generator=generator))
        layer.C_im.copy_(torch.randn(layer.C_im.shape, generator=generator))
        layer.D.copy_(torch.randn(layer.D.shape, generator=generator))
    params = layer.export()
    A_bar, B_bar = discretize(params, "zoh")
    reference = combined_matrices(real_form(A_bar, B_bar, params.C, params.D), variant)
    got = layer.matrices().detach().double().numpy()
    assert got.shape == reference.shape
    np.testing.assert_allclose(got, reference, atol=1e-5 * np.abs(reference).max())

    u = np.random.default_rng(0).normal(size=(4, 20))
    expected = causal_fft_conv(u, vandermonde_kernel(A_bar, params.C * B_bar, 20), params.D)
    layer.eval()
    with torch.no_grad():
        y = layer(torch.from_numpy(u[None].astype(np.float32)))[0].double().numpy()
    np.testing.assert_allclose(y, expected, atol=1e-5 * np.abs(expected).max())
