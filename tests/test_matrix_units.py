"""The matrix of models x dtypes x devices, without loading a model."""

import pytest
import torch

from interp_claims.errors import ModelConfigError
from interp_claims.matrix import Combination, build_matrix, place_on_worker_gpu, reference_index
from interp_claims.models import resolve_model


def test_matrix_is_the_product_in_model_major_order(random_gpt2_folder):
    combos = build_matrix(["embedded", str(random_gpt2_folder)], None, None, "float32,bfloat16", "cpu", "raw")
    assert [c.label for c in combos] == [
        "embedded/float32/cpu", "embedded/bfloat16/cpu", "random-gpt2/float32/cpu", "random-gpt2/bfloat16/cpu",
    ]
    assert [c.index for c in combos] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("dtypes", "message"),
    [("float32,float64", "--dtype 'float64' is not supported"), ("float32,", "has an empty entry"),
     ("float32,float32", "names embedded/float32/cpu twice")],
)
def test_bad_matrix_entries_are_named(dtypes, message):
    with pytest.raises(ModelConfigError, match=message):
        build_matrix(["embedded"], None, None, dtypes, "cpu", "raw")


def test_revision_applies_to_the_hub_models_of_a_matrix():
    combos = build_matrix(["embedded", "gpt2"], None, "v1", "float32", "cpu", "raw")
    assert [c.spec.revision for c in combos] == [None, "v1"]
    with pytest.raises(ModelConfigError, match="applies to Hugging Face ids only"):
        build_matrix(["embedded"], None, "v1", "float32", "cpu", "raw")


def test_each_xdist_worker_takes_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    cuda = Combination(resolve_model("embedded"), torch.device("cuda"), torch.float32, "raw", 0)
    pinned = Combination(resolve_model("embedded"), torch.device("cuda", 0), torch.float32, "raw", 1)
    place_on_worker_gpu([cuda, pinned], "gw5")
    assert cuda.run_device == torch.device("cuda", 1) and cuda.label == "embedded/float32/cuda"
    assert pinned.run_device == torch.device("cuda", 0)  # a device asked for by index stays


def test_cross_claims_compare_with_the_same_model_on_the_first_value_of_their_axis(random_gpt2_folder):
    from interp_claims.claims import load_claims

    combos = [  # built by hand: build_matrix refuses cuda on a machine without it
        Combination(resolve_model(name, None, None), torch.device(device), dtype, "raw", index=0)
        for name in ("embedded", str(random_gpt2_folder)) for dtype in (torch.float32, torch.bfloat16)
        for device in ("cpu", "cuda")
    ]
    for index, combo in enumerate(combos):
        combo.index = index
    by_label = {c.label: c for c in combos}
    claims = {claim.id: claim for claim in load_claims()}
    dtype_claim, device_claim = claims["invariance.dtype"], claims["invariance.device"]

    def reference(claim, label):
        index = reference_index(claim, by_label[label], combos)
        return None if index is None else combos[index].label

    assert reference(dtype_claim, "random-gpt2/bfloat16/cuda") == "random-gpt2/float32/cuda"
    assert reference(dtype_claim, "random-gpt2/float32/cuda") is None  # the reference itself
    assert reference(device_claim, "embedded/bfloat16/cuda") == "embedded/bfloat16/cpu"
    single = build_matrix(["embedded"], None, None, "float32", "cpu", "raw")
    assert reference_index(dtype_claim, single[0], single) is None  # nothing to compare with
