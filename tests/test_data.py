"""Corpora and data splits: real text parsed from the Debian package, splits disjoint."""
import numpy as np
import pytest

from qcompile import assets
from qcompile.errors import QCompileError


@pytest.mark.asset
def test_austen_novels_and_disjoint_splits():
    assets.require("austen")
    from qcompile.models import corpus

    emma = corpus.austen("emma")
    assert emma.startswith("EMMA") and "Emma Woodhouse, handsome, clever, and rich" in emma
    assert corpus.austen("persuasion").startswith("Persuasion") and "Sir Walter Elliot" in corpus.text("calib")
    assert corpus.text("eval") == emma
    eval_paras = {p for p in corpus.text("eval").split("\n\n") if len(p) > 80}
    calib_paras = {p for p in corpus.text("calib").split("\n\n") if len(p) > 80}
    assert len(eval_paras) > 1000 and not eval_paras & calib_paras
    s = corpus.sentences("eval", 20)
    assert len(s) == 20 and all(6 <= len(x.split()) <= 40 for x in s) and s == corpus.sentences("eval", 20)
    with pytest.raises(QCompileError, match="unknown"):
        corpus.austen("ulysses")


@pytest.mark.asset
def test_fashion_mnist_splits():
    assets.require("fashion-mnist")
    from qcompile.models.data import fashion_mnist

    xt, yt = fashion_mnist("train")
    xc, yc = fashion_mnist("calib")
    xe, ye = fashion_mnist("test")
    assert (len(xt), len(xc), len(xe)) == (55000, 5000, 10000)
    assert xt.shape[1:] == (1, 28, 28) and set(np.unique(ye)) == set(range(10))
    # the committed fixtures are the documented slices
    from qcompile.models import ASSETS

    fx = np.load(ASSETS / "fmnist_test256.npz")
    np.testing.assert_array_equal(fx["pixels"], xe[:256])
    np.testing.assert_array_equal(fx["labels"], ye[:256])
    np.testing.assert_array_equal(np.load(ASSETS / "fmnist_calib256.npz")["pixels"], xc[:256])


def test_missing_asset_skips_with_fetch_command(monkeypatch):
    import dataclasses

    monkeypatch.setitem(assets.ASSETS, "austen", dataclasses.replace(assets.ASSETS["austen"], present=lambda: False))
    with pytest.raises(pytest.skip.Exception, match="qcompile assets fetch austen"):
        assets.require("austen")
