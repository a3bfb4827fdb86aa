"""Shared fixtures: the source tree's configs, a scratch directory, seeded torch."""
import os

import pytest

SOURCE_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def config_path(name):
    return os.path.join(SOURCE_DIR, "configs", name + ".json")


@pytest.fixture(autouse=True)
def seeded():
    import torch
    torch.manual_seed(0)
    yield


def agree(got, want):
    """Max abs difference within 1e-3 x max |want| (issue 31's fp32 target)."""
    import numpy as np
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    err, scale = float(np.max(np.abs(got - want))), float(np.max(np.abs(want)))
    assert err <= 1e-3 * scale, f"max abs difference {err:.3g} > 1e-3 x max|out| = {1e-3 * scale:.3g}"
    return err
