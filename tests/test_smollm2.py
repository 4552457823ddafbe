"""The real SmolLM2-135M through the decoder passes: rotate, K-sort + bfp, kv-prerope.

One file so that the three tests, which share the canonicalized model and its float
artifact (``conftest.smollm2_canon``, 40 s to make), are consecutive in collection order:
pytest-xdist hands out tests in consecutive chunks, so they usually run on one worker and
the model is loaded and built once."""
import numpy as np
import pytest

import qcompile as qc
from qcompile import lm
from qcompile.calibration import Calibration
from qcompile.passes.ksort import KSort
from qcompile.passes.kvcache.prerope import KvPrerope


@pytest.mark.slow
@pytest.mark.asset
def test_smollm2_rotated_step_is_equivalent(smollm2_canon):
    from qcompile.models import corpus
    from qcompile.passes.rotate import Rotate

    canon, tok = smollm2_canon.canon, smollm2_canon.tok
    pm = qc.PassManager([Rotate()])
    rot = pm.run(canon)
    (region,) = pm.records[-1].notes["regions"]
    assert region["width"] == 576 and "block" not in region["rotation"]
    assert region["writers"] == {"embedding": 1, "matmul": 60} and region["readers"] == 151
    assert pm.records[-1].notes["online_hadamard"]["sizes"] == {"1536": "12 x 128"}
    ids = np.asarray([tok(corpus.text("eval")).input_ids[:64]])
    cache = lm.empty_cache(30, 3, 64)
    la, _ = lm.artifact_step(smollm2_canon.float_art())(ids, *lm.step_feed(ids, 0), cache)
    lb, _ = lm.artifact_step(qc.build(rot, "llvm"))(ids, *lm.step_feed(ids, 0), cache)
    assert np.abs(la - lb).max() <= 1e-3 * np.ptp(la)
    np.testing.assert_array_equal(la.argmax(-1), lb.argmax(-1))


@pytest.mark.slow
@pytest.mark.asset
def test_smollm2_ksort_is_exact_and_bfp_packs(smollm2_canon):
    """SmolLM2: K-sort alone keeps the logits within float round-off and the top-1 token
    identical on one 192-token window of Emma (three cached steps); the default bfp pipeline
    (BFP12 keys, BFP16 values, blocks of 32) packs a head's token into 34 + 66 bytes (float16:
    256)."""
    from qcompile.models import corpus

    canon, tok = smollm2_canon.canon, smollm2_canon.tok
    ids = np.asarray(tok(corpus.text("eval")).input_ids[:192])[None]
    sorted_ = qc.PassManager([KSort()]).run(canon)
    logits = []
    for m, art in ((canon, smollm2_canon.float_art()), (sorted_, qc.build(sorted_, "llvm"))):
        step, out = lm.artifact_step(art), []
        past = lm.empty_cache_for(m["main"])
        for s in range(0, 192, 64):
            x = ids[:, s:s + 64]
            lg, past = step(x, *lm.step_feed(x, s), past)
            out.append(lg)
        logits.append(np.concatenate(out, 1))
    ref, got = logits
    assert np.abs(got - ref).max() < 1e-4 * np.abs(ref).max()
    assert (got.argmax(-1) == ref.argmax(-1)).all()
    pm = qc.PassManager(qc.pipeline("bfp"))
    pm.run(canon)
    lay = pm.records[-1].notes["kv_cache"]
    assert lay["layers"] == 30 and lay["bytes_per_token"] == 30 * 3 * (34 + 66)


@pytest.mark.slow
@pytest.mark.asset
def test_smollm2_packed_cache(smollm2_canon):
    """SmolLM2 through kv-prerope at 4 bits: 30 layers found, a packed cache about 1/3.7 of
    float16, perplexity over one 256-token window of Emma close to the float cache's
    (benchmarks/kv_cache.py measures 8192 tokens)."""
    from qcompile.models import corpus

    canon, tok = smollm2_canon.canon, smollm2_canon.tok
    calib = Calibration({"tokens": tok(corpus.text("calib")).input_ids[:512], "bos": 1}, progress=False)
    pm = qc.PassManager([KvPrerope(bits=4)], calibration=calib)
    mod = pm.run(canon)
    lay = pm.records[-1].notes["kv_cache"]
    assert lay["layers"] == 30 and lay["ratio_to_float16_at_512"] > 3.5
    proto = lm.Protocol(tokens=256, window=256)
    ids = tok(corpus.text("eval")).input_ids
    arts = {"float": (smollm2_canon.float_art(), canon), "4bit": (qc.build(mod, "llvm"), mod)}
    ppl = {name: lm.perplexity(lm.artifact_step(art), ids, lm.empty_cache_for(m["main"]), proto,
                               progress=False)["perplexity"] for name, (art, m) in arts.items()}
    assert ppl["float"] < ppl["4bit"] < 1.05 * ppl["float"], ppl
