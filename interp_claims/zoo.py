"""The decoy zoo: mutation testing for claims. Each decoy is a GPT-2-architecture model built to
imitate one behaviour without having it (the embedded model with one circuit replaced by a
fake). For each decoy, the claims it must fail (the claim is worth its ability to fail) and
those it must still pass (the decoy is not simply broken) are listed and checked.

    python -m interp_claims.zoo [--decoy NAME ...] [--report reports/zoo.json]

prints the decoy x claim table and the mutation score, and exits 1 unless every decoy fails and
passes exactly as listed.

A decoy that attacks a definition is one that fooled an earlier version of the claims: it lists
``passed_before``, the claims it passed in the claim files of ``--before DIR`` (the repository keeps
those of commit 28be5f9 in ``tests/data/claims-28be5f9``, before the mixed-length inputs), and
``python -m interp_claims.zoo --before tests/data/claims-28be5f9`` checks that too. The mutation
score counts those decoys only (a decoy every version killed proves nothing new); the others stay
as regression guards.
"""

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from interp_claims.builtin.embedded import DEFAULT_LAYOUT, PlantedLayout, planted_model_folder
from interp_claims.claims import check, load_claim_file, load_claims
from interp_claims.measurement import ProbeInputError
from interp_claims.measurer import Measurer
from interp_claims.models import ModelSource, ModelSpec
from interp_claims.registry import load_probes
from interp_claims.report import dumps, short

INDUCTION = ("5.1", "5.5", "6.9", "7.2", "7.10")
BEFORE = "28be5f9"  # the commit whose claim files `passed_before` refers to (seq_len = [50, 37])


PATCHED_TOGETHER = ((5, 1), (5, 5), (6, 9), (7, 2), (7, 10))  # the heads patching.induction-heads-restore-the-repeat restores


def without(heads: tuple, *removed: tuple[int, int]) -> tuple:
    return tuple(head for head in heads if head not in removed)


@dataclass(frozen=True)
class Decoy:
    name: str
    imitates: str  # what it fakes, and how
    layout: PlantedLayout
    must_fail: tuple[str, ...]  # claim ids
    must_pass: tuple[str, ...]
    passed_before: tuple[str, ...] = ()  # claims it imitates that it passed in the earlier claim files (BEFORE)

    @property
    def attacks_definition(self) -> bool:
        """It fooled the earlier claims: it counts in the mutation score."""
        return bool(self.passed_before)


SHARED_PASSES = ("normalisation.notebook-prompt", "repetition.quomatarus.repeat-predicted[2]")

DECOYS = (
    Decoy(
        "fixed-offset-induction",
        "5.1 attends 49 positions back whatever the tokens (the induction stripe at seq_len 50) and writes nothing",
        PlantedLayout(induction=without(DEFAULT_LAYOUT.induction, (5, 1)), fixed_offset=(((5, 1), 49),)),
        must_fail=("heads.induction[5.1]", "induction.layer5[5.1]", "circuits.induction-logit-attribution[5.1]",
                   "circuits.induction-ov-copying[5.1]"),
        must_pass=("heads.induction[5.5]", "heads.no-other-induction-head", *SHARED_PASSES),
    ),
    Decoy(
        "demo-lag-induction",
        "5.1 attends 99 positions back whatever the tokens: the published demo's induction stripe (seq_len 100) "
        "without the behaviour; the content-based claims at other lags catch it. (The demo-setup table claim reads "
        "only that lag: this decoy fails it by attending harder than published, 1.0 against 0.931, not by position)",
        PlantedLayout(induction=without(DEFAULT_LAYOUT.induction, (5, 1)), fixed_offset=(((5, 1), 99),)),
        must_fail=("heads.induction[5.1]", "induction.layer5[5.1]", "circuits.induction-ov-copying[5.1]"),
        must_pass=("heads.induction[5.5]", *SHARED_PASSES),
    ),
    Decoy(
        "silent-induction",
        "5.1 attends exactly like an induction head but writes nothing (a passenger)",
        PlantedLayout(silent=((5, 1),)),
        must_fail=("circuits.induction-logit-attribution[5.1]", "circuits.induction-ov-copying[5.1]"),
        must_pass=("heads.induction[5.1]", "induction.layer5[5.1]", "circuits.induction-logit-attribution[5.5]",
                   "published.head-table[induction]", *SHARED_PASSES),
    ),
    Decoy(
        "fixed-offset-duplicate",
        "0.5 attends 50 positions back whatever the tokens (the earlier copy at seq_len 50)",
        PlantedLayout(fixed_offset=(((0, 5), 50),)),
        must_fail=("heads.duplicate-token[0.5]", "published.head-table[duplicate_token]"),
        must_pass=("heads.duplicate-token[3.0]", *SHARED_PASSES),
    ),
    Decoy(
        "induction-moved-one-layer",
        "the in-context copying is real, but done by heads one layer later than the claims name (each swapped "
        "with the head one layer down)",
        PlantedLayout(swaps=(((5, 1), (6, 1)), ((5, 5), (6, 5)), ((6, 9), (7, 9)), ((7, 2), (8, 2)), ((7, 10), (8, 10)))),
        must_fail=(*(f"heads.induction[{h}]" for h in INDUCTION), "induction.layer5[5.1]", "induction.layer5[5.5]",
                   "circuits.induction-logit-attribution[5.1]", "ablation.induction-heads-carry-repetition",
                   "heads.no-other-induction-head", "published.head-table[induction]",
                   "patching.induction-heads-restore-the-repeat", "patching.sweep.no-other-head-restores",
                   "faithfulness.copying-circuit-is-faithful"),
        must_pass=SHARED_PASSES,
    ),
    Decoy(
        "bos-sink",
        "5.1 and 5.5 rest all their attention on the first position and write nothing; the other copying heads copy",
        PlantedLayout(induction=without(DEFAULT_LAYOUT.induction, (5, 1), (5, 5)), bos_sink=((5, 1), (5, 5))),
        must_fail=("heads.induction[5.1]", "heads.induction[5.5]", "induction.layer5[5.1]", "induction.layer5[5.5]",
                   "circuits.induction-logit-attribution[5.1]", "circuits.induction-logit-attribution[5.5]"),
        must_pass=("heads.induction[6.9]", *SHARED_PASSES),
    ),
    Decoy(
        "silent-previous-token",
        "2.2 attends to the previous token as published but writes nothing; 4.11 alone feeds the induction heads "
        "(a third weaker: on the twin they then stop copying, so the repetition claims fail too and are not listed)",
        PlantedLayout(silent=((2, 2),)),
        must_fail=("circuits.previous-token-ablation[2.2]", "patching.path.previous-token-heads-act-through-keys"),
        must_pass=("heads.previous-token[2.2]", "circuits.previous-token-ablation[4.11]", "normalisation.notebook-prompt"),
    ),
    Decoy(
        "positional-copier-at-measured-lags",
        "5.1 attends 49 and 36 positions back, half each, whatever the tokens, and copies what it lands on: the "
        "induction targets of the old claims' two lags (50 and 37) by position alone",
        PlantedLayout(induction=without(DEFAULT_LAYOUT.induction, (5, 1)), positional_copy=(((5, 1), (49, 36)),)),
        must_fail=("heads.induction[5.1]", "induction.layer5[5.1]", "circuits.induction-logit-attribution[5.1]"),
        must_pass=("heads.induction[5.5]", "circuits.induction-ov-copying[5.1]", "normalisation.notebook-prompt"),
        passed_before=("heads.induction[5.1]", "induction.layer5[5.1]", "circuits.induction-ov-copying[5.1]",
                       "circuits.induction-logit-attribution[5.1]"),
    ),
    Decoy(
        "positional-duplicate-at-measured-lags",
        "0.5 attends 50 and 37 positions back, half each, whatever the tokens: the earlier copy at the old claims' two lags",
        PlantedLayout(fixed_offset=(((0, 5), (50, 37)),)),
        must_fail=("heads.duplicate-token[0.5]", "published.head-table[duplicate_token]"),
        must_pass=("heads.duplicate-token[3.0]", *SHARED_PASSES),
        passed_before=("heads.duplicate-token[0.5]",),
    ),
    Decoy(
        "best-positional-induction",
        "5.1 attends by position alone at the distance that scores highest on the claims' own mixed-length input "
        "(59 back: the longest row's induction offset, length 60; that distance's ceiling there is 0.064, any positional "
        "pattern's 0.110) and copies what it lands on",
        PlantedLayout(induction=without(DEFAULT_LAYOUT.induction, (5, 1)), positional_copy=(((5, 1), (59,)),)),
        must_fail=("heads.induction[5.1]", "induction.layer5[5.1]", "circuits.induction-logit-attribution[5.1]"),
        must_pass=("heads.induction[5.5]", *SHARED_PASSES),
    ),
    Decoy(
        "positional-copier-at-the-patching-lag",
        "the five induction heads of the joint patching claim (5.1 5.5 6.9 7.2 7.10) attend 29 positions back whatever "
        "the tokens and copy what they land on: on the claim's 30-token repeat that is the induction target, so the "
        "clean run copies. The corrupted run copies the clean tokens too (29 back of the fresh half is the first R): "
        "the corruption moves nothing, and the claim fails as having no behaviour to restore",
        PlantedLayout(induction=without(DEFAULT_LAYOUT.induction, *PATCHED_TOGETHER),
                      positional_copy=tuple((head, (29,)) for head in PATCHED_TOGETHER)),
        must_fail=("patching.induction-heads-restore-the-repeat", "patching.sweep.copying-heads-each-restore-some"),
        # not SHARED_PASSES: with five of the nine copiers positional the Quomatarus repeat is no longer predicted
        must_pass=("patching.sweep.no-other-head-restores", "normalisation.notebook-prompt"),
    ),
    Decoy(
        "previous-token-head-moved-earlier",
        "the previous-token circuit is real, but 4.11's plan (attend to the previous token, write it where the copying "
        "heads' keys read) is done by 2.11, two layers earlier (the two heads swapped): the token's identity reaches "
        "the next position before layer 3, where the residual-stream claim says it is not yet",
        PlantedLayout(swaps=(((4, 11), (2, 11)),)),
        must_fail=("patching.residual.not-yet-moved-at-layer-3", "heads.previous-token[4.11]",
                   "patching.path.previous-token-heads-act-through-keys"),
        must_pass=("patching.residual.token-identity-moved-forward-by-layer-5", "patching.induction-heads-restore-the-repeat",
                   *SHARED_PASSES),
    ),
    Decoy(
        "induction-attention-wrong-token",
        "5.1 attends by content exactly like an induction head, but writes the attended token's code turned by a fixed "
        "random rotation: it raises the logits of unrelated tokens",
        PlantedLayout(induction=without(DEFAULT_LAYOUT.induction, (5, 1)), miswriting=((5, 1),)),
        must_fail=("circuits.induction-logit-attribution[5.1]", "circuits.induction-ov-copying[5.1]"),
        must_pass=("heads.induction[5.1]", "induction.layer5[5.1]", "circuits.induction-logit-attribution[5.5]", *SHARED_PASSES),
    ),
    Decoy(
        "backup-head-in-the-control",
        "the ablation control's heads secretly include a backup induction head: 6.2 takes 9.6's plan (attention and "
        "copying output) and 9.6 takes 6.2's. The negative control of attention catches it, and so does the ablation "
        "control read in centred logits (1.27 >= 0.5); the log-probability control does not (one of ten copiers lost "
        "costs the saturated name probability 0.007 nat), listed as a pass",
        PlantedLayout(swaps=(((6, 2), (9, 6)),)),
        must_fail=("heads.no-other-induction-head", "ablation.unclaimed-heads-do-not-move-the-logit",
                   "patching.sweep.no-other-head-restores", "patching.sweep.copying-heads-each-restore-some"),
        must_pass=("ablation.unclaimed-heads-do-not", "heads.induction[5.1]", "ablation.induction-heads-carry-repetition",
                   *SHARED_PASSES),
    ),
)


@dataclass
class DecoyResult:
    decoy: Decoy
    outcomes: dict[str, tuple[bool, Any]] = field(default_factory=dict)  # claim id -> (passed, value)
    before: dict[str, tuple[bool, Any]] | None = None  # passed_before's claims in the earlier files, when run

    @property
    def wrong(self) -> list[str]:
        """Claims that did not fail or pass as listed (and, when run, earlier claims it did not pass)."""
        now = [c for c in self.decoy.must_fail if self.outcomes[c][0]] + [c for c in self.decoy.must_pass if not self.outcomes[c][0]]
        before = [f"{c} (at {BEFORE})" for c, (passed, _) in (self.before or {}).items() if not passed]
        return now + before

    @property
    def killed(self) -> bool:
        """The suite goes red on this decoy: a claim it must fail does."""
        return any(not self.outcomes[c][0] for c in self.decoy.must_fail)


def measure_claims(layout: PlantedLayout, name: str, selected: list, device: torch.device, dtype: torch.dtype) -> dict:
    folder = planted_model_folder(layout)
    spec = ModelSpec(name=f"decoy:{name}", kind="folder", folder=folder, family="embedded")
    measurer = Measurer(spec, device, dtype, "raw", ModelSource(folder, origin="built"))
    measurer.plan(selected)
    outcomes = {}
    try:
        for claim in selected:
            try:
                measurement = measurer.measure(claim)
            except ProbeInputError as error:  # the suite fails such a claim too (unmeasured: no behaviour to restore, ...)
                outcomes[claim.id] = (False, f"unmeasured: {error}")
                continue
            verdict = check(claim, measurement.value, dtype, measurement.details.get("magnitude"))
            outcomes[claim.id] = (verdict.passed, measurement.value)
    finally:
        measurer.close()
    return outcomes


def run_decoy(decoy: Decoy, claims: dict, device: torch.device, dtype: torch.dtype, before: dict | None = None) -> DecoyResult:
    selected = [claims[claim_id] for claim_id in (*decoy.must_fail, *decoy.must_pass)]
    result = DecoyResult(decoy, measure_claims(decoy.layout, decoy.name, selected, device, dtype))
    if before is not None and decoy.passed_before:
        earlier = [before[claim_id] for claim_id in decoy.passed_before]
        result.before = measure_claims(decoy.layout, decoy.name, earlier, device, dtype)
    return result


def load_before(folder: Path) -> dict:
    """The claims of the earlier claim files in ``folder``, by id (probes of today measure them)."""
    files = sorted(Path(folder).glob("*.toml"))
    if not files:
        raise FileNotFoundError(f"no claim files (*.toml) in {folder}")
    return {claim.id: claim for path in files for claim in load_claim_file(path)}


def run_zoo(decoys=DECOYS, device: torch.device = torch.device("cpu"), dtype: torch.dtype = torch.float32,
            before_dir: Path | None = None) -> list[DecoyResult]:
    load_probes()
    claims = {claim.id: claim for claim in load_claims()}
    unknown = sorted({c for d in decoys for c in (*d.must_fail, *d.must_pass)} - set(claims))
    if unknown:
        raise KeyError(f"decoys name claims that no claim file defines: {', '.join(unknown)}")
    before = load_before(before_dir) if before_dir is not None else None
    if before is not None:
        missing = sorted({c for d in decoys for c in d.passed_before} - set(before))
        if missing:
            raise KeyError(f"decoys' passed_before name claims that {before_dir} does not define: {', '.join(missing)}")
    return [run_decoy(decoy, claims, device, dtype, before) for decoy in decoys]


def mutation_score(results: list[DecoyResult]) -> str:
    counted = [r for r in results if r.decoy.attacks_definition]
    guards = [r for r in results if not r.decoy.attacks_definition]
    return (f"mutation score {sum(r.killed for r in counted)}/{len(counted)} decoys killed that passed claims they imitate "
            f"at {BEFORE}; {sum(r.killed for r in guards)}/{len(guards)} regression guards killed")


def table(results: list[DecoyResult]) -> list[str]:
    lines = []
    for r in results:
        lines.append(f"{r.decoy.name}: {'killed' if r.killed else 'SURVIVED'}{'' if not r.wrong else '  <- not as listed: ' + ', '.join(r.wrong)}")
        lines.append(f"  imitates: {r.decoy.imitates}")
        for claim_id, (passed, value) in (r.before or {}).items():
            lines.append(f"    {claim_id:<48} {'pass' if passed else 'fail':<5} at {BEFORE} value {short(value, 30)}")
        for claim_id in (*r.decoy.must_fail, *r.decoy.must_pass):
            passed, value = r.outcomes[claim_id]
            expected = "fail" if claim_id in r.decoy.must_fail else "pass"
            lines.append(f"    {claim_id:<48} {'pass' if passed else 'fail':<5} (must {expected}) value {short(value, 30)}")
    lines.append(mutation_score(results))
    return lines


def markdown_table(results: list[DecoyResult]) -> list[str]:
    """The closing note's table: decoy, what it imitates, claims passed before, claims failed now."""
    lines = [f"| decoy | imitates | passed at {BEFORE} | fails now |", "|---|---|---|---|"]
    for r in results:
        before = ", ".join(f"{c} ({short(v, 30)})" for c, (p, v) in (r.before or {}).items() if p) or "-"
        now = ", ".join(f"{c} ({short(r.outcomes[c][1], 30)})" for c in r.decoy.must_fail if not r.outcomes[c][0])
        lines.append(f"| {r.decoy.name} | {r.decoy.imitates} | {before} | {now} |")
    return lines


def report(results: list[DecoyResult]) -> dict:
    counted = [r for r in results if r.decoy.attacks_definition]
    return {
        "mutation_score": {"killed": sum(r.killed for r in counted), "decoys": len(counted), "before": BEFORE,
                           "regression_guards_killed": sum(r.killed for r in results if not r.decoy.attacks_definition),
                           "regression_guards": len(results) - len(counted)},
        "decoys": [
            {"name": r.decoy.name, "imitates": r.decoy.imitates, "killed": r.killed, "as_listed": not r.wrong,
             "claims": {c: {"passed": p, "value": v, "must": "fail" if c in r.decoy.must_fail else "pass"}
                        for c, (p, v) in r.outcomes.items()},
             "passed_before": {c: {"passed": p, "value": v} for c, (p, v) in (r.before or {}).items()}}
            for r in results
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interp_claims.zoo", description=__doc__.splitlines()[0])
    parser.add_argument("--decoy", action="append", choices=[d.name for d in DECOYS], help="run only these decoys")
    parser.add_argument("--report", type=Path, help="write the results as JSON")
    parser.add_argument("--before", type=Path, help=f"the earlier claim files (of {BEFORE}): check each decoy's passed_before there")
    parser.add_argument("--markdown", action="store_true", help="also print the decoy table as Markdown")
    args = parser.parse_args(argv)
    decoys = [d for d in DECOYS if not args.decoy or d.name in args.decoy]
    results = run_zoo(decoys, before_dir=args.before)
    print("\n".join(table(results)))
    if args.markdown:
        print("\n".join(markdown_table(results)))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(dumps(report(results)))
    return 0 if all(not r.wrong for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
