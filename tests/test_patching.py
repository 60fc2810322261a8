"""Activation patching (probes/patching.py) against TransformerLens's own patching functions, and
the batched sweep's cost in forward-pass equivalents."""

from functools import partial

import pandas as pd
import pytest
import torch
from transformer_lens import patching

from interp_claims.context import ForwardRunner, ProbeContext
from interp_claims.inputs import InputSpec
from interp_claims.measurement import ProbeInputError
from interp_claims.registry import PROBES

SPEC = InputSpec(repeated_random=(10, 2, 0))
PARAMS = {"corruption": "fresh_repeat", "corruption_seed": 1, "metric": "repeat_loss"}
HEADS = [(5, 1), (7, 10), (9, 9), (3, 4)]  # copying heads of the twin, and one outside its circuit


def context(model, name: str) -> ProbeContext:
    runner = ForwardRunner(model)
    runner.plan(SPEC, PROBES[name].hooks)
    return ProbeContext(model, runner, SPEC, PROBES[name].hooks)


def transformer_lens_recoveries(model, restore: str) -> list[float]:
    """TransformerLens's generic_activation_patch (one forward pass per head) at HEADS, normalised by hand."""
    ctx = context(model, "patching_recovery")
    from interp_claims.probes.patching import corrupt, metric_function

    clean = ctx.tokens()
    corrupted = corrupt(ctx, clean, "fresh_repeat", 1)
    metric = metric_function(ctx, clean, "repeat_loss", None)
    with torch.no_grad():
        clean_logits, cache = model.bridge.run_with_cache(clean)
        corrupted_value = float(metric(model.bridge(corrupted)).mean())
        setter = patching.layer_head_vector_patch_setter if restore != "pattern" else patching.layer_head_pattern_patch_setter
        values = patching.generic_activation_patch(
            model.bridge, corrupted, cache, lambda logits: metric(logits).mean(), setter, restore,
            index_df=pd.DataFrame(HEADS, columns=["layer", "head"]))
    clean_value = float(metric(clean_logits).mean())
    return [(float(v) - corrupted_value) / (clean_value - corrupted_value) for v in values]


@pytest.mark.parametrize("restore", ["z", pytest.param("v", marks=pytest.mark.slow), pytest.param("pattern", marks=pytest.mark.slow)])
def test_a_patch_matches_transformer_lens_patching(claims_model, restore):
    """One head restored by our probe equals TransformerLens's patch of it, to float32's 1e-4 (recoveries
    are ratios of losses of about 10: 1e-4 is some 1e-5 relative): the same hook, the same normalisation."""
    reference = transformer_lens_recoveries(claims_model, restore)
    ours = [PROBES["patching_recovery"].function(context(claims_model, "patching_recovery"), head=f"{layer}.{head}",
                                                 restore=restore, **PARAMS).value for layer, head in HEADS]
    assert ours == pytest.approx(reference, abs=1e-4)
    if restore == "z":
        assert ours[0] > 0.1 and abs(ours[3]) < 0.01  # a copying head restores, a head outside the circuit does not


@pytest.mark.slow
def test_a_batched_sweep_matches_transformer_lens_patching(claims_model):
    """The sweep's 48 patched copies per forward pass give each head what its own pass gives: no copy
    leaks into another."""
    reference = transformer_lens_recoveries(claims_model, "z")
    sweep = PROBES["patching_sweep"].function(context(claims_model, "patching_sweep"), heads=["5.1"], aggregate="claimed_min",
                                              patches_per_pass=48, **PARAMS).details["all_heads"]
    assert [sweep[layer][head] for layer, head in HEADS] == pytest.approx(reference, abs=1e-4)


TWO_LENGTHS = InputSpec(repeated_random=(10, 2, 0), alternatives=(InputSpec(repeated_random=(7, 2, 0)),))


def measure_on_two_lengths(model, name: str, **params):
    runner = ForwardRunner(model)
    for variant in TWO_LENGTHS.variants:
        runner.plan(variant, PROBES[name].hooks)
    return PROBES[name].function(ProbeContext(model, runner, TWO_LENGTHS, PROBES[name].hooks), **params, **PARAMS)


def test_several_lengths_report_the_worst(claims_model):
    """An input of two lengths is measured on each: ``lowest`` reports the smaller recovery (a claim that
    the heads restore must hold at every lag), ``highest`` the larger (a claim that they restore nothing)."""
    measure = partial(measure_on_two_lengths, claims_model)
    lowest = measure("patching_recovery", head="5.1")
    per_input = lowest.details["per_input"]
    assert set(per_input) == {"seq_len 10", "seq_len 7"}
    recoveries = [row["recovery"] for row in per_input.values()]
    assert lowest.value == pytest.approx(min(recoveries), abs=1e-4) and min(recoveries) < max(recoveries)
    assert measure("patching_recovery", head="5.1", across_inputs="highest").value == pytest.approx(max(recoveries), abs=1e-4)
    with pytest.raises(ProbeInputError, match="across_inputs 'worst' is not known. Valid: lowest, highest"):
        measure("patching_recovery", head="5.1", across_inputs="worst")


@pytest.mark.slow
def test_a_sweep_over_several_lengths_reads_the_worst(claims_model):
    """The sweep over two lengths: the weakest claimed head at either length, a table per length."""
    single = [measure_on_two_lengths(claims_model, "patching_recovery", head="5.1", across_inputs=worst).value
              for worst in ("lowest", "highest")]
    sweep = measure_on_two_lengths(claims_model, "patching_sweep", heads=["5.1"], aggregate="claimed_min", patches_per_pass=48)
    assert sweep.value == pytest.approx(min(single), abs=1e-4)
    assert set(sweep.details["per_input"]) == {"seq_len 10", "seq_len 7"}
    assert sweep.details["forward_pass_equivalents"] == 2 * 146


PATH_SPEC = InputSpec(repeated_random=(10, 2, 0))
PATH_PARAMS = {"corruption": "replace_token", "corrupt_position": 3, "corrupt_token": " the", "metric": "repeat_loss"}


def path_recovery(model, receivers: list[str], component: str = "k", senders=("4.11",)) -> float:
    probe = PROBES["path_patching_recovery"]
    runner = ForwardRunner(model)
    runner.plan(PATH_SPEC, probe.hooks)
    return probe.function(ProbeContext(model, runner, PATH_SPEC, probe.hooks), senders=list(senders), receivers=receivers,
                          component=component, **PATH_PARAMS).value


@pytest.mark.slow
def test_a_path_patch_matches_transformer_lens_direct_path_patching(claims_model):
    """4.11's path into one later head's keys, ours against ``transformer_lens.patching.get_act_patch_direct_path``
    (one pass per receiver); and the bridge's split-input flag is left as it was."""
    from interp_claims.probes.patching import corrupt, metric_function

    ctx = context(claims_model, "path_patching_recovery")
    bridge = claims_model.bridge
    clean = ctx.tokens()
    corrupted = corrupt(ctx, clean, "replace_token", 1, position=3, token=" the")
    metric = metric_function(ctx, clean, "repeat_loss", None)
    with torch.no_grad():
        clean_logits, clean_cache = bridge.run_with_cache(clean)
        corrupted_logits, corrupted_cache = bridge.run_with_cache(corrupted)
        table = patching.get_act_patch_direct_path(bridge, corrupted, clean_cache, corrupted_cache, lambda logits: metric(logits).mean(),
                                                   src_layer=4, src_head=11, component="k", verbose=False)
    clean_value, corrupted_value = float(metric(clean_logits).mean()), float(metric(corrupted_logits).mean())
    receivers = [(5, 1), (7, 10), (9, 9), (6, 0)]
    theirs = [(float(table[layer, head]) - corrupted_value) / (clean_value - corrupted_value) for layer, head in receivers]
    ours = [path_recovery(claims_model, [f"{layer}.{head}"]) for layer, head in receivers]
    # 4.11 alone moves a receiver's share by 0.001-0.005 here, so 1e-4 would not tell one receiver from
    # another; the same float32 operations in the same order agree to 1e-6 (measured: exactly)
    assert max(theirs) > 1e-3
    assert ours == pytest.approx(theirs, abs=1e-6)
    assert not bridge.cfg.use_split_qkv_input


def test_path_patching_restores_through_keys_alone(claims_model):
    """The twin's previous-token heads reach its copying heads through their keys (K-composition), not
    their queries or values; a receiver before a sender, or an unknown component, is named."""
    copying = ["5.1", "5.5", "6.9", "7.2", "7.10", "5.0", "9.6", "9.9", "10.1"]
    both = ("2.2", "4.11")
    assert path_recovery(claims_model, copying, "k", both) > 0.2
    assert abs(path_recovery(claims_model, copying, "q", both)) < 1e-3
    assert not claims_model.bridge.cfg.use_split_qkv_input
    with pytest.raises(ProbeInputError, match=r"receivers \['3.4'\] are not after every sender \(the last in layer 4\)"):
        path_recovery(claims_model, ["3.4", "5.1"])
    with pytest.raises(ProbeInputError, match="component 'o' is not known. Valid: q, k, v"):
        path_recovery(claims_model, ["5.1"], "o")


def test_bad_patching_input_is_named(claims_model):
    probe = PROBES["patching_recovery"].function
    with pytest.raises(ProbeInputError, match="corruption 'swap' is not known. Valid: fresh_repeat, swap_pairs"):
        probe(context(claims_model, "patching_recovery"), head="5.1", corruption="swap", metric="repeat_loss")
    with pytest.raises(ProbeInputError, match="not both or neither"):
        probe(context(claims_model, "patching_recovery"), head="5.1", heads=["5.5"], **PARAMS)
    with pytest.raises(ProbeInputError, match="restore 'q' is not known"):
        probe(context(claims_model, "patching_recovery"), head="5.1", restore="q", **PARAMS)


@pytest.mark.slow
@pytest.mark.parametrize("per_pass", [1, 48])
def test_sweep_cost(benchmark, claims_model, per_pass):
    """A 144-head sweep: 146 forward-pass equivalents of compute (clean, corrupted, one copy per head)
    in 2 + ceil(144 / per_pass) forward calls; per_pass = 1 is TransformerLens's one pass per head."""
    def sweep():
        ctx = context(claims_model, "patching_sweep")
        measurement = PROBES["patching_sweep"].function(ctx, heads=["5.1"], aggregate="claimed_min", patches_per_pass=per_pass, **PARAMS)
        return measurement, ctx.runner.stats.passes

    measurement, calls = benchmark.pedantic(sweep, rounds=1, warmup_rounds=0)
    assert calls == measurement.details["forward_calls"] == 2 + -(-144 // per_pass)
    benchmark.extra_info.update(forward_calls=calls, forward_pass_equivalents=measurement.details["forward_pass_equivalents"],
                                patches_per_pass=per_pass)


NOTEBOOK_PROMPTS = InputSpec(texts=(
    "When John and Mary went to the shops, John gave the bag to", "When John and Mary went to the shops, Mary gave the bag to",
    "When Tom and James went to the park, James gave the ball to", "When Tom and James went to the park, Tom gave the ball to",
))
ANSWERS = [[" Mary", " John"], [" John", " Mary"], [" Tom", " James"], [" James", " Tom"]]


def test_swap_pairs_and_the_logit_difference_on_the_notebook_prompts(claims_model):
    """The IOI corruption swaps each pair (the answers stay): the clean logit difference is the corrupted
    one negated, prompt for prompt, when the pair's prompts are each other's mirror."""
    from interp_claims.probes.patching import corrupt, metric_function

    runner = ForwardRunner(claims_model)
    ctx = ProbeContext(claims_model, runner, NOTEBOOK_PROMPTS, ())
    clean = ctx.tokens()
    corrupted = corrupt(ctx, clean, "swap_pairs", 0)
    assert torch.equal(corrupted[0], clean[1]) and torch.equal(corrupted[3], clean[2])
    metric = metric_function(ctx, clean, "logit_diff", ANSWERS)
    with torch.no_grad():
        logits = claims_model.bridge(torch.cat([clean, corrupted]))
    values = metric(logits)  # two copies: the answers repeat with them
    final = logits[torch.arange(4), -1]
    ids = [[claims_model.bridge.tokenizer.encode(a, add_special_tokens=False)[0] for a in pair] for pair in ANSWERS]
    by_hand = torch.stack([final[i, c] - final[i, w] for i, (c, w) in enumerate(ids)])
    assert values[:4] == pytest.approx(by_hand.tolist(), abs=1e-5)


def test_the_ablated_head_loses_its_own_attribution(claims_model):
    """The backup probe's self-check: the head whose output is zeroed at the last position ends with no
    direct attribution there, so its change is minus what it had; a head of layer 0 (before it) is unmoved."""
    runner = ForwardRunner(claims_model)
    probe = PROBES["ioi_backup_attribution_change"]
    runner.plan(NOTEBOOK_PROMPTS, probe.hooks)

    def other(convention):
        from interp_claims.models import load_model

        model = load_model(claims_model.spec, claims_model.device, claims_model.dtype, convention, None)
        return ProbeContext(model, ForwardRunner(model))

    ctx = ProbeContext(claims_model, runner, NOTEBOOK_PROMPTS, probe.hooks, other)
    own = probe.function(ctx, head="9.9", ablate="9.9", answers=ANSWERS)
    assert own.details["after"] == pytest.approx(0.0, abs=1e-6) and own.value == pytest.approx(-own.details["before"], abs=1e-4)
    earlier = probe.function(ctx, head="0.1", ablate="9.9", answers=ANSWERS)
    assert abs(earlier.value) < 1e-6


@pytest.mark.slow
def test_faithfulness_of_the_planted_circuit_and_its_curve(claims_model):
    """The twin's planted circuit keeps all of the copy with everything else mean-ablated, its copying heads
    alone keep little (the previous-token heads feed them), and the knockout-ranked curve puts the
    circuit's eleven heads first."""
    spec = InputSpec(repeated_random=(8, 1, 0))
    probe = PROBES["circuit_faithfulness"]
    circuit = ["2.2", "4.11", "5.1", "5.5", "6.9", "7.2", "7.10", "5.0", "9.6", "9.9", "10.1"]

    def measure(**params):
        return probe.function(ProbeContext(claims_model, ForwardRunner(claims_model), spec, ()), **params)

    assert measure(heads=circuit, aggregate="circuit").value > 0.9
    assert measure(heads=circuit[2:], aggregate="circuit").value < 0.5
    curve = measure(heads=circuit, aggregate="size_to_reach", fraction=0.9)
    assert set(curve.details["ranking"][:11]) == set(circuit)
    assert curve.value <= 11
    with pytest.raises(ProbeInputError, match="aggregate 'best' is not known"):
        measure(heads=circuit, aggregate="best")


COPY_PROMPTS = InputSpec(texts=("The red fox ran past the old mill and the red fox ran past the old",
                                 "A blue bird sat on the tall tree and a blue bird sat on the tall"))
COPY_ANSWERS = [[" mill", " tree"], [" tree", " mill"]]
COPY_REFERENCES = [  # each prompt's template with nothing repeated: the copy has nothing to read
    ["The red fox ran past the old mill and a green cat hid under one new",
     "The red fox ran past the old mill and my black dog slept near his big"],
    ["A blue bird sat on the tall tree and the brown cow ate from her low",
     "A blue bird sat on the tall tree and one small dog ran in the cold"]]


def test_faithfulness_on_prompts_with_reference_prompts(claims_model):
    """On prompts, each prompt's ablated heads take the mean over its own reference prompts (per position):
    the twin's circuit keeps its copy of a repeated phrase (1.00 measured), random sets of its size
    little (0.08 on average). With each prompt its own reference, ablating every head changes nothing,
    row by row, in every copy of the batch: the means line up with their prompts."""
    from interp_claims.probes.faithfulness import kept_scores, text_reference_means
    from interp_claims.probes.patching import metric_function

    circuit = ["2.2", "4.11", "5.1", "5.5", "6.9", "7.2", "7.10", "5.0", "9.6", "9.9", "10.1"]
    ctx = ProbeContext(claims_model, ForwardRunner(claims_model), COPY_PROMPTS, ())
    probe = partial(PROBES["circuit_faithfulness"].function, ctx, heads=circuit, metric="logit_diff", answers=COPY_ANSWERS)
    random_sets = probe(aggregate="random_mean", reference_texts=COPY_REFERENCES)
    assert random_sets.details["circuit"] > 0.9 and random_sets.value < 0.2
    itself = text_reference_means(ctx, [[text] for text in COPY_PROMPTS.texts])
    measure = metric_function(ctx, ctx.tokens(), "logit_diff", COPY_ANSWERS)
    every = {(layer, head) for layer in range(12) for head in range(12)}
    full, none, some = kept_scores(ctx, ctx.tokens(), [every, set(), {(5, 1)}], itself, measure)
    assert none == pytest.approx(full, abs=1e-4) and some == pytest.approx(full, abs=1e-4) and full > 5
    with pytest.raises(ProbeInputError, match="reference prompt 'A blue bird' is 4 tokens, its prompt 17"):
        probe(aggregate="circuit", reference_texts=[["A blue bird"], ["A blue bird"]])
    with pytest.raises(ProbeInputError, match=r"reference_texts needs one non-empty list of prompts per prompt \(2\)"):
        probe(aggregate="circuit", reference_texts=COPY_REFERENCES[0])
    with pytest.raises(ProbeInputError, match="'size_to_reach' ranks heads on a discovery split"):
        probe(aggregate="size_to_reach", reference_texts=COPY_REFERENCES)


def test_the_token_probability_metric_and_a_replaced_token(claims_model):
    """``token_prob`` is the correct answer's softmax probability at the last position; ``replace_token``
    changes exactly one position of every prompt; a stream restored everywhere at layer 0 restores all."""
    from interp_claims.probes.patching import corrupt, metric_function

    ctx = ProbeContext(claims_model, ForwardRunner(claims_model), NOTEBOOK_PROMPTS, ())
    clean = ctx.tokens()
    corrupted = corrupt(ctx, clean, "replace_token", 0, position=-2, token=" Sid")
    assert (corrupted != clean).sum(dim=1).tolist() == [1, 1, 1, 1]
    with torch.no_grad():
        logits = claims_model.bridge(clean)
    correct = [claims_model.bridge.tokenizer.encode(pair[0], add_special_tokens=False)[0] for pair in ANSWERS]
    by_hand = logits[:, -1].softmax(-1)[torch.arange(4), correct]
    assert metric_function(ctx, clean, "token_prob", ANSWERS)(logits).tolist() == pytest.approx(by_hand.tolist(), abs=1e-6)
    probe = PROBES["patching_recovery"]
    runner = ForwardRunner(claims_model)
    runner.plan(NOTEBOOK_PROMPTS, probe.hooks)
    with pytest.raises(ProbeInputError, match="no behaviour to restore"):  # the twin gives the names ~0 probability
        probe.function(ProbeContext(claims_model, runner, NOTEBOOK_PROMPTS, probe.hooks), layer=0, restore="resid_pre",
                       corruption="swap_pairs", metric="token_prob", answers=ANSWERS)
    everywhere = probe.function(context(claims_model, "patching_recovery"), layer=0, restore="resid_pre",
                                corruption="replace_token", corrupt_position=3, corrupt_token=" the", metric="repeat_loss")
    assert everywhere.value == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ProbeInputError, match="corrupt_token of one token"):
        corrupt(ctx, clean, "replace_token", 0, position=3, token=" Quomatarus")
    with pytest.raises(ProbeInputError, match="takes a layer"):
        probe.function(ProbeContext(claims_model, runner, NOTEBOOK_PROMPTS, probe.hooks), head="9.9", restore="mlp_out",
                       corruption="swap_pairs", metric="token_prob", answers=ANSWERS)
