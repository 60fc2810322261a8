"""GPT-2 small's published per-head tables, as data (no torch).

``interp_claims/builtin/gpt2-published-heads.json`` (package data: the embedded twin is built from
it wherever the package is installed) is a verbatim copy of ``shared/reference/gpt2-published-heads.json``:
every table TransformerLens's demo notebooks store for GPT-2 small (read from the notebooks'
plotly figures; the setup of each, in words, is in ``gpt2-published-heads.md`` beside the
reference). A table is ``[layer][head]``, 12 x 12.

The three head-score tables of the Exploratory Analysis demo, run A (``torch.manual_seed(0)``),
are measured on ``[R, R]`` without BOS, R = 100 token ids uniform in 100..19999, batch 2, as the
mean of one diagonal of ``hook_pattern`` (offset 1 previous-token, 100 duplicate-token, 99
induction). Runs B to E are the same cells run again (B, E unseeded): their differences are the
run-to-run spread a claim's ``published.spread`` is measured against.
"""

import json
from functools import cache

from interp_claims.resources import PUBLISHED_FILE


# score kind (probes/heads.py) -> the demo's table name, per run
DEMO_TABLES = {
    "previous_token": "Previous_Token_Scores",
    "duplicate_token": "Duplicate_Token_Scores",
    "induction": "Induction_Head_Scores",
}
DEMO_RUNS = ("A", "B", "C", "D", "E")
# The demo's setup (section 1.0 of the reference): the input every EA_run* head table was measured on.
DEMO_SETUP = {"seq_len": 100, "batch": 2, "seed": 0, "bos": False, "low": 100, "high": 20000}


@cache
def tables() -> dict[str, dict]:
    return json.loads(PUBLISHED_FILE.read_text())


def table(name: str) -> list[list[float]]:
    """One published 12 x 12 table by its key (``EA_runA_Induction_Head_Scores``, ...)."""
    known = tables()
    if name not in known:
        raise KeyError(f"no published table {name!r}. Known: {', '.join(sorted(known))}")
    return known[name]["values"]


def demo_table(kind: str, run: str = "A") -> list[list[float]]:
    """The Exploratory demo's ``kind`` score of every head in ``run``."""
    if kind not in DEMO_TABLES:
        raise KeyError(f"no published demo table for score kind {kind!r}. Known: {', '.join(DEMO_TABLES)}")
    return table(f"EA_run{run}_{DEMO_TABLES[kind]}")
