"""Claims as data: load and validate claim files, and check a measurement against a claim.

A claim file is TOML with one ``[[claim]]`` table per claim::

    [[claim]]
    id = "induction.layer5"                 # unique across every file loaded
    behaviour = "induction"                 # a pytest marker: `-m induction`
    kind = "behaviour"                      # or "sanity": counted and selected apart (`-m sanity`)
    models = ["gpt2", "embedded"]           # families it applies to ("*" = any model)
    probe = "head_score"                    # a registered probe
    source = "ARENA 1.2 ... (citation or link)"
    justification = "why this threshold"    # required for every numeric threshold
    input = { repeated_random = { seq_len = [50, 37], batch = 10, seed = 0 } }  # one input per seq_len
    params = { kind = "induction" }
    each = { head = ["5.1", "5.5"] }        # optional: one claim per value, id "induction.layer5[5.1]"
    expect = { op = ">", value = 0.4 }

``expect.op`` is one of ``>`` ``>=`` ``<`` ``<=`` (one-sided; ``value`` is a number, or
a kind of ``interp_claims.tolerances`` resolved for the loaded dtype), ``between`` (``low``,
``high``: two-sided, inclusive), ``approx`` (``value``, ``tolerance``: two-sided
``|measured - value| <= tolerance``, where tolerance is a number or a kind of
``interp_claims.tolerances``), ``==`` (exact; for discrete facts such as ids or pieces) or
``snapshot`` (compared with a syrupy snapshot, one per model family).

A numeric one-sided bound may add ``rounding_steps = N``: N rounding steps of the session's
dtype at the magnitude of the values compared (the probe reports it as
``details["magnitude"]``), for numbers printed from a float32 run and checked in bfloat16.

``across = "dtype"`` or ``"device"`` makes a claim compare combinations of the matrix: its
probe's value (a number or a tensor) on each combination is compared with the same model's
value on the first dtype (or device) of the matrix, and the claim's value is the largest
absolute difference; a tolerance kind is resolved for the looser of the two dtypes, at the
reference's magnitude. It runs when the matrix has several values on that axis
(``--dtype float32,bfloat16``, ``--device cpu,cuda``)::

    [[claim]]
    id = "invariance.device"
    across = "device"
    probe = "next_token_logprobs"
    expect = { op = "<=", value = "logprob" }

``checkpoints = "all"`` (or a list of names) with ``at = "first" | "last" | "change" | "each"``
makes a claim range over the model's training checkpoints (``interp_claims.checkpoints``): its
probe runs on each, and ``at`` picks the value checked (``change`` = last - first; ``each`` =
the checkpoint closest to failing, so the claim must hold at every one).

``kind`` says what a pass shows. ``sanity``: what any healthy model of the architecture must
satisfy (normalisation, a recompute, an invariance, a tokenizer fact, a control); a randomly
initialised model passes it too. ``behaviour``: what a source says this model does inside
(induction heads, in-context copying, IOI), resting on a published number; a model without the
behaviour fails it. ``prediction``: a behaviour nobody has published a number for (what ablating
five heads costs, say): it is counted apart, as never checked on real GPT-2. Reports count the
three apart, so "99 claims passed" cannot hide that most were sanity checks or predictions.

``published = { value = ..., source = "...", setup = "...", spread = ... }``: the published
number the claim rests on, in the claim's units (``value``: a number or list; a table keyed by
the ``each`` case, ``"5.1" = 0.931``; or ``table = "EA_runA_Induction_Head_Scores"``, a table of
``interp_claims/builtin/gpt2-published-heads.json`` read at the case's ``head``), ``setup`` saying how it was
measured where that differs from the probe, and ``spread`` how far another run of the same
measurement moves it (the demo's stored runs differ by up to 0.076 on induction scores). Every
``behaviour`` claim about ``gpt2`` carries one; a ``prediction`` cannot. At load, the published
value must satisfy the claim's own expectation with ``spread`` to spare, or the claim file is
refused: a claim GPT-2's own published number fails is a bug in the claim.

NaN and infinities never pass a numeric comparison.
"""

import itertools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_claims.inputs import InputSpec
from interp_claims.errors import did_you_mean
from interp_claims.resources import BUILTIN_CLAIMS_DIR, PROMPTS_FILE
from interp_claims.registry import PROBES, load_probes
from interp_claims.tolerances import KINDS as TOLERANCE_KINDS
from interp_claims.tolerances import rounding_step
from interp_claims.tolerances import tolerance as dtype_tolerance

ONE_SIDED = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}
OPS = (*ONE_SIDED, "between", "approx", "==", "snapshot")
REQUIRED = ("id", "behaviour", "kind", "models", "probe", "source", "expect")
KINDS = ("sanity", "behaviour", "prediction")
OPTIONAL = ("justification", "input", "params", "each", "description", "across", "checkpoints", "at", "published")
PUBLISHED_FIELDS = ("value", "table", "source", "setup", "spread")
AXES = ("dtype", "device")



def is_builtin(claim) -> bool:
    """Whether ``claim`` comes from a built-in claim file (not one of the user's)."""
    return Path(claim.file).resolve().is_relative_to(BUILTIN_CLAIMS_DIR.resolve())


class ClaimFileError(ValueError):
    """A claim file is malformed; the message names the file and the row."""


@dataclass(frozen=True)
class Claim:
    id: str
    behaviour: str
    kind: str  # "sanity" or "behaviour"
    models: tuple[str, ...]
    probe: str
    source: str
    expect: dict[str, Any]
    file: str
    row: int
    justification: str = ""
    description: str = ""
    input: InputSpec | None = None
    params: dict[str, Any] = field(default_factory=dict)
    across: str | None = None  # "dtype" or "device": compared with the matrix's first value on that axis
    checkpoints: str | tuple[str, ...] | None = None  # "all" or names: measured on each training checkpoint
    at: str | None = None  # with checkpoints: "first", "last", "change" or "each"
    published: dict[str, Any] | None = None  # value, source, setup, spread: the number the claim rests on

    def applies_to(self, family: str) -> bool:
        return "*" in self.models or family in self.models

    @property
    def threshold_text(self) -> str:
        op = self.expect["op"]
        if op == "between":
            return f"in [{self.expect['low']}, {self.expect['high']}]"
        if op == "approx":
            return f"= {self.expect['value']} ± {self.expect['tolerance']}"
        if op == "snapshot":
            return "matches snapshot"
        steps = f" + {self.expect['rounding_steps']} rounding steps" if self.expect.get("rounding_steps") else ""
        return f"{op} {self.expect['value']}{steps}"


@dataclass(frozen=True)
class Verdict:
    passed: bool
    threshold: str  # the expectation as text, with any dtype tolerance resolved
    margin: float | None  # distance to failing, positive when passing (numeric claims)


def _fail(path: Path, row: int, claim_id: Any, message: str) -> ClaimFileError:
    where = f"{path}: claim #{row}" + (f" (id {claim_id!r})" if claim_id else "")
    return ClaimFileError(f"{where}: {message}")


def _validate_expect(expect: Any, error) -> None:
    if not isinstance(expect, dict) or "op" not in expect:
        raise error(f"expect must be a table with an 'op' (one of {', '.join(OPS)}), got {expect!r}")
    op = expect["op"]
    if op not in OPS:
        raise error(f"expect.op {op!r} is not known. Valid: {', '.join(OPS)}")
    needs = {"between": ("low", "high"), "approx": ("value", "tolerance"), "==": ("value",), "snapshot": ()}
    for key in needs.get(op, ("value",)):
        if key not in expect:
            raise error(f"expect with op {op!r} needs {key!r}")
    numeric = {"between": ("low", "high"), "approx": ("value",)}.get(op, ("value",) if op in ONE_SIDED else ())
    if op in ONE_SIDED and isinstance(expect["value"], str):
        if expect["value"] not in TOLERANCE_KINDS:
            raise error(f"expect.value {expect['value']!r} is neither a number nor a tolerance kind ({', '.join(TOLERANCE_KINDS)})")
        numeric = ()
    for key in numeric:
        if isinstance(expect[key], bool) or not isinstance(expect[key], (int, float)) or not math.isfinite(expect[key]):
            raise error(f"expect.{key} must be a finite number, got {expect[key]!r}")
    if "rounding_steps" in expect:
        steps = expect["rounding_steps"]
        if op not in ONE_SIDED or isinstance(expect["value"], str):
            raise error("rounding_steps widens a numeric one-sided bound (op <, <=, >, >= with a number)")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise error(f"rounding_steps must be a non-negative integer, got {steps!r}")
    if op == "between" and expect["low"] > expect["high"]:
        raise error(f"expect.low {expect['low']} is above expect.high {expect['high']}")
    if op == "approx":
        tol = expect["tolerance"]
        if isinstance(tol, str) and tol not in TOLERANCE_KINDS:
            raise error(f"expect.tolerance {tol!r} is not a tolerance kind. Valid: a number or {', '.join(TOLERANCE_KINDS)}")
        if not isinstance(tol, str) and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < math.inf):
            raise error(f"expect.tolerance must be a non-negative finite number or a kind, got {tol!r}")


def _validate_checkpoints(row: dict[str, Any], error) -> None:
    from interp_claims.checkpoints import AT

    if "checkpoints" not in row and "at" not in row:
        return
    names, at, op = row.get("checkpoints"), row.get("at"), row["expect"]["op"]
    if names != "all" and (not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names)):
        raise error(f"checkpoints must be \"all\" or a non-empty list of checkpoint names, got {names!r}")
    if at not in AT:
        raise error(f"a claim over checkpoints needs `at`, one of {', '.join(AT)}; got {at!r}")
    if at == "each" and op not in ONE_SIDED:
        raise error(f"at = \"each\" needs a one-sided bound (op {', '.join(ONE_SIDED)}), got {op!r}")
    if at == "change" and op in ("==", "snapshot"):
        raise error("at = \"change\" is a difference of numbers: give a numeric bound")
    if "across" in row:
        raise error("a claim ranges over checkpoints or across combinations, not both")


def _validate_published(row: dict[str, Any], error) -> None:
    published, kind = row.get("published"), row["kind"]
    about_gpt2 = "gpt2" in row["models"]  # "*" (any model) is a claim of the user's about their models
    if published is None:
        if kind == "behaviour" and about_gpt2:
            raise error("a behaviour claim about gpt2 needs `published = { value = ..., source = \"...\", spread = ... }` "
                        "(the published number it rests on), or kind = \"prediction\" when nothing is published")
        return
    if kind == "prediction":
        raise error("a prediction has no published value: with one, it is kind = \"behaviour\"")
    if not isinstance(published, dict):
        raise error(f"published must be a table (value or table, source, setup, spread), got {published!r}")
    unknown = set(published) - set(PUBLISHED_FIELDS)
    if unknown:
        raise error(f"published has unknown field(s) {', '.join(sorted(unknown))}. Valid: {', '.join(PUBLISHED_FIELDS)}")
    if ("value" in published) == ("table" in published):
        raise error("published needs exactly one of `value` (the number) or `table` (a published head table)")
    if not isinstance(published.get("source"), str) or not published["source"].strip():
        raise error("published needs a `source`: where the number was published")
    if "table" in published:
        from interp_claims.published import tables

        if published["table"] not in tables():
            raise error(f"published.table {published['table']!r} is not a published table. Known: {', '.join(sorted(tables()))}")
    spread = published.get("spread", 0.0)
    if isinstance(spread, bool) or not isinstance(spread, (int, float)) or not math.isfinite(spread) or spread < 0:
        raise error(f"published.spread must be a non-negative finite number, got {spread!r}")
    if row["expect"]["op"] not in ("==", "snapshot") and "spread" not in published:
        raise error("published needs a `spread` (how far another run moves the number; 0 if it cannot move) for a numeric threshold")


def published_for_case(published: dict[str, Any] | None, case_label: str | None, params: dict[str, Any], error) -> dict[str, Any] | None:
    """The claim's published entry with ``value`` resolved for one ``each`` case."""
    if published is None:
        return None
    resolved = dict(published)
    if "table" in published:
        from interp_claims.published import table

        head = params.get("head")
        try:
            layer, index = (int(part) for part in str(head).split("."))
            resolved["value"] = table(published["table"])[layer][index]
        except (ValueError, IndexError):
            raise error(f"published.table needs the case's `head` as 'LAYER.HEAD' inside 12 x 12, got {head!r}") from None
    elif isinstance(published["value"], dict):
        if case_label not in published["value"]:
            raise error(f"published.value has no entry for case {case_label!r} (keys: {', '.join(published['value'])})")
        resolved["value"] = published["value"][case_label]
    return resolved


def published_agrees(claim: "Claim") -> str | None:
    """Why the claim's own published value fails its expectation with its spread to spare (None: it agrees)."""
    published, expect, op = claim.published, claim.expect, claim.expect["op"]
    if published is None or op == "snapshot" or claim.across is not None:
        return None
    value, spread = published["value"], float(published.get("spread", 0.0))
    if op == "==":
        return None if value == expect["value"] else f"published value {value!r} is not {expect['value']!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"published value {value!r} is not a number, and the claim compares numbers ({op})"
    import torch

    value = float(value)
    if op in ONE_SIDED:  # the tightest dtype (float32) for tolerance kinds: the published runs were float32
        bound = expect["value"]
        bound = dtype_tolerance(bound, torch.float32) if isinstance(bound, str) else float(bound)
        worst = value - spread if op in (">", ">=") else value + spread
        ok = ONE_SIDED[op](worst, bound)
        return None if ok else f"published value {value:g} with spread {spread:g} (worst {worst:g}) does not satisfy {op} {bound:g}"
    if op == "between":
        ok = expect["low"] <= value - spread and value + spread <= expect["high"]
        return None if ok else f"published value {value:g} ± {spread:g} leaves [{expect['low']}, {expect['high']}]"
    tol = expect["tolerance"]
    tol = dtype_tolerance(tol, torch.float32) if isinstance(tol, str) else float(tol)
    ok = abs(value - float(expect["value"])) + spread <= tol
    return None if ok else f"published value {value:g} ± {spread:g} is not within {tol:g} of {expect['value']}"


def _expand(row: dict[str, Any], error) -> list[tuple[str, dict[str, Any]]]:
    """(id, params) per case of ``each`` (a cartesian product over its keys)."""
    each = row.get("each") or {}
    params = dict(row.get("params") or {})
    if not isinstance(each, dict) or any(not isinstance(v, list) or not v for v in each.values()):
        raise error(f"each must map parameter names to non-empty lists, got {each!r}")
    if not each:
        return [(row["id"], params)]
    cases = []
    for values in itertools.product(*each.values()):
        case = dict(zip(each, values, strict=True))
        label = ",".join(str(v).strip() for v in values)
        cases.append((f"{row['id']}[{label}]", {**params, **case}))
    return cases


def named_prompts() -> dict[str, str]:
    return tomllib.loads(PROMPTS_FILE.read_text())


def _format_input(table: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Resolve ``prompt = NAME`` (fixtures/prompts.toml) and fill ``{param}`` placeholders of
    input texts from the case's params (for ``each``)."""

    def fill(text: str) -> str:
        for key, value in params.items():
            text = text.replace("{" + key + "}", str(value))
        return text

    table = dict(table)
    if "prompt" in table:
        prompts = named_prompts()
        if table["prompt"] not in prompts:
            raise KeyError(f"no prompt named {table['prompt']!r} in {PROMPTS_FILE}; known: {', '.join(prompts)}")
        table["text"] = prompts[table.pop("prompt")]
    if "text" in table and isinstance(table["text"], str):
        table["text"] = fill(table["text"])
    if "texts" in table and isinstance(table["texts"], list):  # anything else is refused by InputSpec.from_table
        table["texts"] = [fill(t) if isinstance(t, str) else t for t in table["texts"]]
    return table


def load_claim_file(path: Path) -> list[Claim]:
    path = Path(path)
    if not path.is_file():
        raise ClaimFileError(f"claim file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as decode_error:
        raise ClaimFileError(f"{path}: not valid TOML: {decode_error}") from None
    rows = data.get("claim")
    if not isinstance(rows, list) or not rows:
        raise ClaimFileError(f"{path}: no [[claim]] tables found")
    probes = load_probes()
    claims = []
    for number, row in enumerate(rows, start=1):

        def error(message: str, number=number, row=row) -> ClaimFileError:
            return _fail(path, number, row.get("id"), message)

        missing = [key for key in REQUIRED if key not in row]
        if missing:
            raise error(f"missing field(s) {', '.join(missing)}")
        unknown = set(row) - set(REQUIRED) - set(OPTIONAL)
        if unknown:
            raise error(f"unknown field(s) {', '.join(sorted(unknown))}. Valid: {', '.join(REQUIRED + OPTIONAL)}")
        if row["kind"] not in KINDS:
            raise error(f"kind {row['kind']!r} is not known. Valid: {', '.join(KINDS)} (sanity: any healthy model passes; "
                        "behaviour: what a source publishes this model does; prediction: a behaviour nobody has published a number for)")
        if row["probe"] not in probes:
            raise error(f"unknown probe {row['probe']!r}{did_you_mean(row['probe'], probes)}. Registered: {', '.join(sorted(probes))}")
        if not isinstance(row["id"], str) or not row["id"].strip():
            raise error(f"id must be a non-empty string, got {row['id']!r}")
        for key in ("behaviour", "source", "justification", "description"):
            if key in row and (not isinstance(row[key], str) or not row[key].strip()):
                raise error(f"{key} must be a non-empty string, got {row[key]!r}")
        if not isinstance(row["models"], list) or not row["models"]:
            raise error(f"models must be a non-empty list of families, got {row['models']!r}")
        from interp_claims.models import FAMILIES

        unknown_families = [m for m in row["models"] if m not in (*FAMILIES, "*")]
        if unknown_families:
            raise error(f"models {row['models']!r}: {unknown_families[0]!r} is not a model family"
                        f"{did_you_mean(str(unknown_families[0]), FAMILIES)}. Valid: {', '.join(FAMILIES)}, or \"*\" (any model)")
        if "params" in row and not isinstance(row["params"], dict):
            raise error(f"params must be a table of the probe's keyword arguments, got {row['params']!r}")
        for key, values in (row.get("each") or {}).items() if isinstance(row.get("each"), dict) else ():
            if key == "head" and isinstance(values, list) and any(not isinstance(v, str) for v in values):
                bad = next(v for v in values if not isinstance(v, str))
                raise error(f"each.head {bad!r} is not a string: TOML reads 7.10 as the number 7.1; write heads as strings, \"7.10\"")
        if isinstance((row.get("params") or {}).get("head"), (int, float)):
            raise error(f"params.head {row['params']['head']!r} is not a string: write heads as strings, \"7.10\"")
        _validate_expect(row["expect"], error)
        if row["expect"]["op"] not in ("==", "snapshot") and not row.get("justification"):
            raise error("a numeric threshold needs a `justification` (why this number, from where)")
        if row["expect"]["op"] == "snapshot" and "*" in row["models"]:
            raise error("a snapshot claim must list its model families: one snapshot is kept per family")
        _validate_checkpoints(row, error)
        _validate_published(row, error)
        if "across" in row and (row["across"] not in AXES or row["expect"]["op"] not in ("<", "<=")):
            raise error(f"across {row['across']!r} needs one of {', '.join(AXES)} and an upper bound (op < or <=) on the difference")
        spec = PROBES[row["probe"]]
        if spec.needs_forward and "input" not in row:
            raise error(f"probe {row['probe']!r} runs the model: the claim needs an `input` table")
        for claim_id, params in _expand(row, error):
            unexpected = set(params) - set(spec.params)
            if unexpected:
                raise error(f"probe {row['probe']!r} takes no parameter(s) {', '.join(sorted(unexpected))}; it takes {', '.join(spec.params) or 'none'}")
            absent = set(spec.required) - set(params)
            if absent:
                raise error(f"probe {row['probe']!r} needs parameter(s) {', '.join(sorted(absent))}")
            input_spec = None
            if "input" in row:
                table = row["input"]
                if not isinstance(table, dict) or len({"prompt", "text", "texts", "repeated_random"} & set(table)) != 1:
                    raise error(f"input must be a table with one of `prompt`, `text`, `texts` or `repeated_random`, got {table!r}")
                try:
                    input_spec = InputSpec.from_table(_format_input(table, params))
                except (KeyError, TypeError, ValueError) as bad:
                    raise error(f"input {table!r} is malformed: {bad}") from None
            claims.append(
                Claim(
                    id=claim_id,
                    behaviour=row["behaviour"],
                    kind=row["kind"],
                    models=tuple(row["models"]),
                    probe=row["probe"],
                    source=row["source"],
                    expect=row["expect"],
                    file=str(path),
                    row=number,
                    justification=row.get("justification", ""),
                    description=row.get("description", ""),
                    input=input_spec,
                    params=params,
                    across=row.get("across"),
                    checkpoints=row.get("checkpoints") if row.get("checkpoints") in (None, "all") else tuple(row["checkpoints"]),
                    at=row.get("at"),
                    published=published_for_case(row.get("published"), claim_id.partition("[")[2][:-1] or None, params, error),
                )
            )
            disagreement = published_agrees(claims[-1])
            if disagreement:
                raise error(f"{claim_id}: {disagreement}: GPT-2's own published number fails this claim "
                            f"({claims[-1].published['source']})")
    return claims


def load_claims(extra_files: list[Path] = ()) -> list[Claim]:
    """The built-in claim files, then the user's; ids must be unique across all of them."""
    builtin = sorted(BUILTIN_CLAIMS_DIR.glob("*.toml"))
    if not builtin:
        raise ClaimFileError(f"no built-in claim files in {BUILTIN_CLAIMS_DIR}: this installation of interp-claims is "
                             f"incomplete (reinstall it; a wheel carries them as package data)")
    user = [Path(p) for p in extra_files]
    files = builtin + [p for i, p in enumerate(user) if p.resolve() not in {q.resolve() for q in builtin + user[:i]}]
    claims: list[Claim] = []
    seen: dict[str, Claim] = {}
    for path in files:
        for claim in load_claim_file(path):
            if claim.id in seen:
                first = seen[claim.id]
                raise ClaimFileError(
                    f"{claim.file}: claim #{claim.row}: duplicate id {claim.id!r}, first defined in {first.file} claim #{first.row}"
                )
            seen[claim.id] = claim
            claims.append(claim)
    return claims


def check(claim: Claim, value: Any, dtype=None, magnitude: float | None = None) -> Verdict:
    """Compare a measured value with the claim's expectation; ``magnitude`` (of the values the
    probe compared) sets the rounding steps of tolerance kinds and of ``rounding_steps``."""
    expect, op = claim.expect, claim.expect["op"]
    if op == "==":
        return Verdict(passed=value == expect["value"], threshold=f"== {expect['value']!r}", margin=None)
    if op == "snapshot":
        raise ValueError("snapshot claims are checked against syrupy, not here")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        from interp_claims.measurement import ProbeOutputError

        raise ProbeOutputError(f"claim {claim.id} ({claim.file} #{claim.row}) compares numbers ({claim.threshold_text}) but probe "
                               f"{claim.probe!r} returned {type(value).__name__} {str(value)[:80]}: use op \"==\" or \"snapshot\" "
                               f"for a value that is not a number")
    value = float(value)
    if not math.isfinite(value):  # NaN and +-inf pass no comparison, one-sided or not
        return Verdict(passed=False, threshold=claim.threshold_text, margin=None)
    if op in ONE_SIDED:
        bound = expect["value"]
        bound = dtype_tolerance(bound, dtype, magnitude) if isinstance(bound, str) else float(bound)
        if expect.get("rounding_steps"):
            if magnitude is None:
                raise ValueError(f"claim {claim.id}: rounding_steps needs a probe that reports details['magnitude']; {claim.probe} does not")
            widening = expect["rounding_steps"] * rounding_step(dtype, magnitude)
            bound += -widening if op in (">", ">=") else widening  # widen: a lower bound moves down
        margin = value - bound if op in (">", ">=") else bound - value
        return Verdict(passed=ONE_SIDED[op](value, bound), threshold=f"{op} {bound:g}", margin=margin)
    if op == "between":
        low, high = float(expect["low"]), float(expect["high"])
        return Verdict(passed=low <= value <= high, threshold=claim.threshold_text, margin=min(value - low, high - value))
    tol = expect["tolerance"]
    tol = dtype_tolerance(tol, dtype, magnitude) if isinstance(tol, str) else float(tol)
    target = float(expect["value"])
    return Verdict(
        passed=abs(value - target) <= tol,
        threshold=f"= {target} ± {tol:g}",
        margin=tol - abs(value - target),
    )
