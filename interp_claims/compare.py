"""Reports that compare: a run against a previous report, and several reports merged into one.

* ``--claims-compare PREVIOUS.json``: each claim's change since a previous report (value delta,
  verdict flips, claims new or gone), in the terminal and in the report.
* ``python -m interp_claims.compare merge OUT.json A.json B.json ...``: reports from separate CI
  jobs (one per model, dtype or device) merged into one JSON, Markdown and HTML table of claim x
  combination; claims that one report has and another lacks are named, per side.
"""

import argparse
import html
import json
import sys
from pathlib import Path
from typing import Any

from interp_claims.report import TABLE_STYLE, comparison_lines, dumps, short  # noqa: F401 (comparison_lines re-exported)


class ReportFileError(ValueError):
    """A report given to compare or merge cannot be read; the message names the file."""


def read_report(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ReportFileError(f"claims report {path} does not exist (write one with --claims-report PATH)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ReportFileError(f"claims report {path} is not valid JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list) or "run" not in data:
        raise ReportFileError(f"{path} is not a claims report: it needs 'run' and a 'claims' list (written by --claims-report)")
    return data


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _combinations(results: list[dict]) -> list[str]:
    """The combinations the results name (results from before combinations were recorded name none)."""
    return list(dict.fromkeys(r["combination"] for r in results if r.get("combination")))


def compare(previous: list[dict], current: list[dict]) -> list[dict]:
    """One row per claim and combination in either list: before and now (verdict, value), delta
    and flip. A matrix run's rows are matched combination by combination (``heads.induction[5.1]``
    on bfloat16 with bfloat16, never with float32); one run against one run, claim by claim."""
    single = len(_combinations(previous)) <= 1 and len(_combinations(current)) <= 1

    def key(result: dict) -> tuple[str, str]:
        return result["id"], "" if single else (result.get("combination") or "")

    before, now = {key(r): r for r in previous}, {key(r): r for r in current}
    rows = []
    for row_key in [*now, *(k for k in before if k not in now)]:
        old, new = before.get(row_key), now.get(row_key)
        claim_id = row_key[0] if single else f"{row_key[0]}@{row_key[1]}"
        row = {"id": claim_id, "before": None, "now": None, "delta": None, "change": None}
        if old is not None:
            row["before"] = {"passed": old["passed"], "value": old["value"]}
        if new is not None:
            row["now"] = {"passed": new["passed"], "value": new["value"]}
        if old is None:
            row["change"] = "new"
        elif new is None:
            row["change"] = "gone"
        else:
            a, b = _number(old["value"]), _number(new["value"])
            row["delta"] = b - a if a is not None and b is not None else None
            if old["passed"] != new["passed"]:
                row["change"] = "now FAILS" if old["passed"] else "now passes"
            elif row["delta"] is None and old["value"] != new["value"]:
                row["change"] = "value changed"
        rows.append(row)
    return rows


def model_warning(previous: list[dict], current: list[dict]) -> str | None:
    """A warning when the previous report measured other models than this run: its differences
    are then the models', not a library's or a claim's."""
    models = [sorted({c.split("/")[0] for c in _combinations(results) if c}) for results in (previous, current)]
    if all(models) and models[0] != models[1]:
        return (f"warning: the previous report is of {', '.join(models[0])} and this run of {', '.join(models[1])}: "
                f"its differences include the change of model")
    return None


def combination(run: dict) -> str:
    """How a report's run is labelled in a merge: its combination (model/dtype/device), with the
    commit of a hub model, so that two CI runs of different revisions stay apart."""
    revision = f"@{run['commit'][:8]}" if run.get("commit") else ""
    if run.get("combination"):
        model, _, rest = run["combination"].partition("/")
        return f"{model}{revision}/{rest}"
    return f"{run.get('model')}{revision}/{run.get('dtype')}/{run.get('device')}"


def merge(reports: list[dict]) -> dict:
    """One report of several: every claim x combination, and which claims each combination lacks."""
    labels = [combination(r["run"]) for r in reports]
    if len(set(labels)) != len(labels):
        labels = [f"{label} #{i + 1}" for i, label in enumerate(labels)]
    ids = list(dict.fromkeys(c["id"] for r in reports for c in r["claims"]))
    table = {claim_id: {} for claim_id in ids}
    for label, report in zip(labels, reports, strict=True):
        for claim in report["claims"]:
            table[claim["id"]][label] = {"passed": claim["passed"], "value": claim["value"]}
    missing = {label: [i for i in ids if label not in table[i]] for label in labels}
    differs = [i for i in ids if len({json.dumps(v["passed"]) for v in table[i].values()}) > 1 or len(table[i]) < len(labels)]
    return {"runs": dict(zip(labels, (r["run"] for r in reports), strict=True)), "claims": table,
            "missing": {k: v for k, v in missing.items() if v}, "differs": differs}


def _cell(entry: dict | None) -> str:
    if entry is None:
        return "missing"
    return f"{'pass' if entry['passed'] else 'FAIL'} {short(entry['value'])}"


def merged_markdown(merged: dict) -> str:
    labels = list(merged["runs"])
    lines = ["# Claims across combinations", "", f"{len(merged['claims'])} claims x {len(labels)} combinations; "
             f"{len(merged['differs'])} differ (bold).", ""]
    for label, ids in merged["missing"].items():
        lines.append(f"- **{label}** lacks {len(ids)} claim(s): {', '.join(ids[:20])}{' ...' if len(ids) > 20 else ''}")
    lines += ["", "| claim | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for claim_id, cells in merged["claims"].items():
        name = f"**{claim_id}**" if claim_id in merged["differs"] else claim_id
        lines.append(f"| {name} | " + " | ".join(_cell(cells.get(label)).replace("|", "\\|") for label in labels) + " |")
    return "\n".join(lines) + "\n"


def merged_html(merged: dict) -> str:
    esc = html.escape
    labels = list(merged["runs"])
    head = "".join(f"<th>{esc(label)}</th>" for label in labels)
    rows = []
    for claim_id, cells in merged["claims"].items():
        style = " class='differs'" if claim_id in merged["differs"] else ""
        tds = "".join(
            f"<td class='{'missing' if cells.get(l) is None else 'pass' if cells[l]['passed'] else 'fail'}'>{esc(_cell(cells.get(l)))}</td>"
            for l in labels
        )
        rows.append(f"<tr{style}><td>{esc(claim_id)}</td>{tds}</tr>")
    missing = "".join(f"<li><b>{esc(k)}</b> lacks {len(v)}: {esc(', '.join(v))}</li>" for k, v in merged["missing"].items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Claims across combinations</title>
<style>{TABLE_STYLE}
.missing{{color:#888}} tr.differs td:first-child{{background:#fee;font-weight:bold}}</style></head>
<body><h1>Claims across combinations</h1>
<p>{len(merged['claims'])} claims x {len(labels)} combinations; {len(merged['differs'])} differ (highlighted).</p>
<ul>{missing}</ul>
<table><tr><th>claim</th>{head}</tr>{''.join(rows)}</table></body></html>
"""


def write_merged(out: Path, reports: list[dict]) -> tuple[Path, Path, Path]:
    merged = merge(reports)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dumps(merged))
    markdown, page = out.with_suffix(".md"), out.with_suffix(".html")
    markdown.write_text(merged_markdown(merged))
    page.write_text(merged_html(merged))
    return out, markdown, page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interp_claims.compare", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    merge_command = commands.add_parser("merge", help="merge claims reports into OUT (.json, .md, .html)")
    merge_command.add_argument("out", type=Path)
    merge_command.add_argument("reports", type=Path, nargs="+")
    args = parser.parse_args(argv)
    try:
        reports = [read_report(path) for path in args.reports]
    except ReportFileError as error:
        parser.error(str(error))
    paths = write_merged(args.out, reports)
    merged = json.loads(paths[0].read_text())
    for label, ids in merged["missing"].items():
        print(f"{label} lacks {len(ids)} claim(s): {', '.join(ids[:10])}{' ...' if len(ids) > 10 else ''}")
    print(f"merged {len(reports)} reports into {', '.join(map(str, paths))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
