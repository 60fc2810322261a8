"""Claim results -> a terminal table, JSON, Markdown and a self-contained HTML page.

The HTML draws each head claim's attention pattern as an inline PNG (written with zlib,
no plotting library), so the page opens offline as a CI artifact.
"""

import base64
import html
import json
import math
import struct
import zlib
from pathlib import Path
from typing import Any


def short(value: Any, width: int = 40) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


# The look every page of this package shares (the report, the view across combinations).
TABLE_STYLE = ("body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} "
               "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;vertical-align:top} "
               ".pass{color:#060} .fail{color:#b00;font-weight:bold}")


def outcome_of(result: dict) -> str:
    """passed, failed, error (the probe raised) or skipped; reports older than outcomes had only ``passed``."""
    return result.get("outcome") or ("passed" if result["passed"] else "failed")


FLAGS = {"passed": "", "failed": "  <- FAIL", "error": "  <- ERROR", "skipped": "  <- SKIPPED"}


def totals_text(results: list[dict]) -> str:
    """'113/115 claims passed, 1 failed, 1 error, 0 skipped': every collected claim counted once,
    as pytest counts them (an error and a failure are both pytest's "failed")."""
    counts = {name: sum(outcome_of(r) == name for r in results) for name in FLAGS}
    extra = "".join(f", {counts[name]} {name if name != 'error' else 'raised an error'}"
                    for name in ("failed", "error", "skipped") if counts[name])
    return f"{counts['passed']}/{len(results)} claims passed{extra}"


def verdict_value(result: dict, width: int) -> str:
    """The value, or for a claim without one the reason it has none."""
    if outcome_of(result) in ("error", "skipped") or (result["value"] is None and result.get("reason")):
        return short(f"{outcome_of(result)}: {result.get('reason') or ''}", width)
    return short(result["value"], width)


def summary_lines(run: dict, results: list[dict]) -> list[str]:
    """One row per claim row of a file (its ``each`` cases folded: passed/total, the worst margin)."""
    lines = [
        f"model {run['model']} (family {run['family']}) on {run['device']} {run['dtype']}, weights {run['weights']}",
        *([f"model {run.get('hub_id')} at {run['commit']} (revision {run.get('revision')}), {run.get('weights_origin')}: {run.get('weights_folder')}"]
          if run.get("commit") else []),
        f"{'claim':<48} {'passed':>7} {'worst value':<24} {'published':<12} threshold",
    ]
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(r["id"].split("[")[0], []).append(r)
    for claim_id, rows in groups.items():
        failing = sorted((r for r in rows if not r["passed"]), key=lambda r: list(FLAGS).index(outcome_of(r)))
        numeric = [r for r in rows if isinstance(r["margin"], (int, float))]
        worst = failing[0] if failing else min(numeric, key=lambda r: r["margin"]) if numeric else rows[0]
        count = f"{len(rows) - len(failing)}/{len(rows)}"
        flag = FLAGS[outcome_of(worst)] if failing else ""
        lines.append(f"{claim_id[:48]:<48} {count:>7} {verdict_value(worst, 24):<24} {published_text(worst, 12):<12} "
                     f"{short(worst['threshold'], 36)}{flag}")
    for r in results:  # why a claim has no verdict, in full
        if outcome_of(r) in ("error", "skipped") or (not r["passed"] and r.get("reason")):
            lines.append(f"  {outcome_of(r)}: {r['id']} ({r.get('file', '')}): {r.get('reason')}")
    ratio = run["claim_seconds"] / run["forward_seconds"] if run["forward_seconds"] else float("nan")
    lines.append(
        f"{totals_text(results)} ({counts_by_kind(results)}); {run['forward_passes']} forward passes took "
        f"{run['forward_seconds']:.2f} s of {run['claim_seconds']:.2f} s measuring claims "
        f"(ratio {ratio:.2f}); model load {run['model_load_seconds']:.2f} s"
    )
    return lines


def published_text(result: dict, width: int = 24) -> str:
    """The published value a claim rests on, '(prediction)' where none is, '' for sanity claims without one."""
    published = result.get("published")
    if published:
        return short(published["value"], width)
    return "(prediction)" if result.get("kind") == "prediction" else ""


def counts_by_kind(results: list[dict]) -> str:
    """'behaviour 40/41 passed, prediction 12/12 passed (never checked on real GPT-2), sanity 59/59
    passed': what was shown, apart from what nobody published and from what any model shows."""
    parts = []
    for kind in ("behaviour", "prediction", "sanity"):
        rows = [r for r in results if r.get("kind", "behaviour") == kind]
        if rows:
            note = " (never checked on real GPT-2)" if kind == "prediction" else ""
            parts.append(f"{kind} {sum(r['passed'] for r in rows)}/{len(rows)} passed{note}")
    return ", ".join(parts)


def _json_ready(results: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "pictures"} | {"pictures": len(r["pictures"])} for r in results]


def strict_json(data: Any) -> Any:
    """``data`` with every non-finite float as the string "NaN", "Infinity" or "-Infinity": JSON has
    no such numbers, and Python's bare ``NaN`` makes a report other tools (jq, JavaScript) refuse."""
    if isinstance(data, float) and not math.isfinite(data):
        return "NaN" if math.isnan(data) else ("Infinity" if data > 0 else "-Infinity")
    if isinstance(data, dict):
        return {k: strict_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict_json(v) for v in data]
    return data


def dumps(data: Any) -> str:
    """JSON as every report writes it: indented, strict (no bare NaN), anything else as text."""
    return json.dumps(strict_json(data), indent=2, default=str, allow_nan=False)


def nonfinite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def write_json(path: Path, run: dict, results: list[dict]) -> None:
    """The report; a claim whose value is NaN or infinite carries ``"value_nonfinite": true`` beside
    the value written as a string (so a reader needs no string comparison to find them)."""
    claims = [r | {"value_nonfinite": True} if nonfinite(r.get("value")) else r for r in _json_ready(results)]
    path.write_text(dumps({"run": run, "claims": claims}))


def write_markdown(path: Path, run: dict, results: list[dict]) -> None:
    lines = [
        f"# Claims report: {run['model']}",
        "",
        f"Family `{run['family']}`, device `{run['device']}`, dtype `{run['dtype']}`, weights `{run['weights']}`; "
        + ", ".join(f"{k} {v}" for k, v in run["versions"].items()),
        "",
        *([f"Hugging Face `{run.get('hub_id')}` at commit `{run['commit']}` (revision `{run.get('revision')}`), "
           f"snapshot `{run.get('weights_folder')}`.", ""] if run.get("commit") else []),
        f"{totals_text(results)}: {counts_by_kind(results)}.",
        "",
        "| claim | kind | pass | value | published | threshold | margin | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    marks = {"passed": "yes", "failed": "**NO**", "error": "**ERROR**", "skipped": "skipped"}
    for r in results:
        margin = f"{r['margin']:.4g}" if isinstance(r["margin"], (int, float)) else ""
        cells = [r["id"], r.get("kind", ""), marks[outcome_of(r)], verdict_value(r, 120), published_text(r, 40),
                 r["threshold"], margin, r["source"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def png_heatmap(matrix: list[list[float]], cell: int = 6) -> bytes:
    """A grayscale PNG of ``matrix`` (values in [0, 1], 1 = black), each entry a cell x cell square."""
    rows = []
    for values in matrix:
        line = bytes(shade(v) for v in values for _ in range(cell))
        rows += [b"\x00" + line] * cell
    height, width = len(matrix) * cell, (len(matrix[0]) if matrix else 0) * cell

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")


def shade(value: float) -> int:
    """Gray level of a value in [0, 1]: 255 (white) at 0, 0 (black) at 1."""
    return 255 - int(max(0.0, min(1.0, value)) * 255)


COLOUR_SCALE = base64.b64encode(png_heatmap([[i / 99 for i in range(100)]], cell=2)).decode()


def behaviour_summary(results: list[dict]) -> list[tuple[str, str, int, int]]:
    """(behaviour, kinds, passed, total) per behaviour, in first-seen order."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(r["behaviour"], []).append(r)
    return [(b, "/".join(sorted({r.get("kind", "") for r in rows})), sum(r["passed"] for r in rows), len(rows))
            for b, rows in groups.items()]


def head_heatmaps(results: list[dict]) -> str:
    """Per score kind, every head's score as a layer x head table (the standard induction-score
    picture), the claimed heads outlined, from the head claims' details."""
    esc = html.escape
    tables = []
    by_kind: dict[str, dict] = {}
    for r in results:
        details = r.get("details") or {}
        if "all_heads" in details and "kind" in details:
            entry = by_kind.setdefault(details["kind"], {"scores": details["all_heads"], "claimed": set()})
            # a head claim names its head in its id (heads.induction[5.1]); a discovery claim in its details
            head = details.get("head") or details.get("previous_token_head") or r["id"].rsplit("[", 1)[-1].split("]")[0].split("@")[0]
            entry["claimed"].update(details.get("claimed_heads") or [head])
    for kind, entry in by_kind.items():
        scores = entry["scores"]
        header = "".join(f"<th>{h}</th>" for h in range(len(scores[0])))
        body = []
        for layer, row in enumerate(scores):
            cells = []
            for head, value in enumerate(row):
                gray = shade(abs(value))
                text = "#fff" if gray < 128 else "#000"
                claimed = f"{layer}.{head}" in entry["claimed"]
                colour = f"rgb({gray},{gray},255)" if value >= 0 else f"rgb(255,{gray},{gray})"  # negative: red
                style = f"background:{colour};color:{text}" + (";outline:3px solid #d00" if claimed else "")
                cells.append(f"<td style='{style}' title='{layer}.{head}'>{value:.2f}</td>")
            body.append(f"<tr><th>{layer}</th>{''.join(cells)}</tr>")
        what = ("recovery when each head alone is restored (rows = layers, columns = heads; negative in red)"
                if kind.startswith("patching") else "score of every head (rows = layers, columns = heads; lowest over the claim's lags)")
        tables.append(
            f"<figure><figcaption><b>{esc(kind)}</b> {what}; claimed or discovered heads outlined</figcaption>"
            f"<table class='heads'><tr><th></th>{header}</tr>{''.join(body)}</table></figure>"
        )
    return "".join(tables)


def line_chart(title: str, points: list[tuple[str, float]], y_label: str, width: int = 420, height: int = 180) -> str:
    """An inline SVG line chart of (x label, y) points in order: no plotting library, opens offline."""
    esc = html.escape
    numeric = [(x, float(y)) for x, y in points if isinstance(y, (int, float)) and y == y]
    if len(numeric) < 2:
        return ""
    ys = [y for _, y in numeric]
    low, high = min(ys), max(ys)
    span = (high - low) or 1.0
    left, right, top, bottom = 48, 10, 10, 34
    def at(i: int, y: float) -> tuple[float, float]:
        return (left + i * (width - left - right) / (len(numeric) - 1),
                top + (high - y) / span * (height - top - bottom))
    coords = [at(i, y) for i, (_, y) in enumerate(numeric)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2.5'><title>{esc(str(label))}: {value:.4g}</title></circle>"
                   for (x, y), (label, value) in zip(coords, numeric, strict=True))
    ticks = [numeric[0][0], numeric[len(numeric) // 2][0], numeric[-1][0]]
    x_labels = "".join(f"<text x='{at(i, low)[0]:.1f}' y='{height - 18}' text-anchor='middle'>{esc(str(t))}</text>"
                       for i, t in zip((0, len(numeric) // 2, len(numeric) - 1), ticks, strict=True))
    return (
        f"<figure><figcaption>{esc(title)}</figcaption><svg width='{width}' height='{height}' font-size='11'>"
        f"<line x1='{left}' y1='{top}' x2='{left}' y2='{height - bottom}' stroke='#999'/>"
        f"<line x1='{left}' y1='{height - bottom}' x2='{width - right}' y2='{height - bottom}' stroke='#999'/>"
        f"<text x='{left - 4}' y='{top + 8}' text-anchor='end'>{high:.3g}</text>"
        f"<text x='{left - 4}' y='{height - bottom}' text-anchor='end'>{low:.3g}</text>"
        f"<text x='4' y='{height - 4}'>{esc(y_label)}</text>{x_labels}"
        f"<polyline points='{path}' fill='none' stroke='#36c' stroke-width='1.5'/>{dots}</svg></figure>"
    )


def training_charts(run: dict, results: list[dict]) -> str:
    """The training loss curve (models built here record it) and every claim's value per checkpoint."""
    charts = []
    curve = (run.get("training") or {}).get("loss_curve") or []
    if curve:
        charts.append(line_chart("training loss (mean over each logged window of steps)",
                                 [(f"step {point['step']}", point["loss"]) for point in curve], "loss"))
    for r in results:
        curve = (r.get("details") or {}).get("curve")
        if curve:
            charts.append(line_chart(f"{r['id']}: share of the behaviour kept by the top-k heads (faithfulness curve)",
                                     [(str(k), value) for k, value in curve], "kept"))
        series = (r.get("details") or {}).get("series")
        if series:
            charts.append(line_chart(f"{r['id']}: value per checkpoint (checked at {r['details'].get('at')})",
                                     [(name, value) for name, value in series], "value"))
    return "".join(charts)


def write_html(path: Path, run: dict, results: list[dict]) -> None:
    esc = html.escape
    rows = []
    for r in results:
        margin = f"{r['margin']:.4g}" if isinstance(r["margin"], (int, float)) else ""
        status = {"passed": '<td class="pass">pass</td>', "failed": '<td class="fail">FAIL</td>',
                  "error": '<td class="fail">ERROR</td>', "skipped": '<td class="skip">skipped</td>'}[outcome_of(r)]
        name = f"<a href='#{esc(r['id'])}'>{esc(r['id'])}</a>" if r["pictures"] else esc(r["id"])
        why = f"<br><small>{esc(r['reason'])}</small>" if outcome_of(r) == "failed" and r.get("reason") else ""
        published = r.get("published") or {}
        published_title = f" title='{esc(published.get('source', ''))}; {esc(published.get('setup', ''))}'" if published else ""
        rows.append(
            f"<tr><td>{name}</td>{status}<td>{esc(verdict_value(r, 200))}{why}</td>"
            f"<td{published_title}>{esc(published_text(r, 40))}</td>"
            f"<td>{esc(r['threshold'])}</td><td>{margin}</td><td>{esc(r['source'])}</td></tr>"
        )
    figures = []
    for r in results:
        for picture in r["pictures"]:
            image = base64.b64encode(png_heatmap(picture["pattern"])).decode()
            labels = " ".join(f"{i}:{esc(repr(t))}" for i, t in enumerate(picture["labels"][:64]))
            figures.append(
                f"<figure id='{esc(r['id'])}'><figcaption><b>{esc(r['id'])}</b>: {esc(picture['title'])} "
                f"(value {esc(short(r['value']))}; rows = query positions, columns = key positions)"
                f"</figcaption><img class='attention' alt='attention pattern' src='data:image/png;base64,{image}'>"
                f"<div class='scale'>0 <img alt='colour scale' src='data:image/png;base64,{COLOUR_SCALE}'> 1</div>"
                f"<details><summary>tokens</summary><code>{labels}</code></details></figure>"
            )
    versions = ", ".join(f"{esc(k)} {esc(str(v))}" for k, v in run["versions"].items())
    summary = "".join(
        f"<tr><td>{esc(b)}</td><td>{esc(k)}</td><td class='{'pass' if p == n else 'fail'}'>{p}/{n}</td></tr>"
        for b, k, p, n in behaviour_summary(results)
    )
    heatmaps = head_heatmaps(results)
    training = training_charts(run, results)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Claims report: {esc(run['model'])}</title>
<style>{TABLE_STYLE}
.skip{{color:#850}} img{{image-rendering:pixelated;border:1px solid #999}}
figure{{display:inline-block;vertical-align:top;margin:1em;width:440px;max-width:calc(100% - 2em)}} code{{font-size:12px}}
figure img.attention{{width:100%;height:auto;box-sizing:border-box}} figcaption{{font-size:14px;margin-bottom:4px}}
table.heads td{{font-size:12px;padding:2px 3px;text-align:center}} .scale img{{width:160px;height:10px;vertical-align:middle}}
small{{font-size:12px}} details code{{display:block;max-height:12em;overflow:auto;white-space:pre-wrap;word-break:break-all}}</style></head>
<body><h1>Claims report: {esc(run['model'])}</h1>
<p>Family <code>{esc(run['family'])}</code>, device <code>{esc(run['device'])}</code> ({esc(run['device_name'])}),
dtype <code>{esc(run['dtype'])}</code>, weights <code>{esc(run['weights'])}</code>; {versions}.</p>
<p>{esc(totals_text(results))} ({esc(counts_by_kind(results))}); {run['forward_passes']} forward passes.</p>
<h2>By behaviour</h2>
<table><tr><th>behaviour</th><th>kind</th><th>passed</th></tr>{summary}</table>
<h2>Claims</h2>
<table><tr><th>claim</th><th>result</th><th>value</th><th>published</th><th>threshold</th><th>margin</th><th>source</th></tr>
{''.join(rows)}</table>
{f"<h2>Training and checkpoints</h2>{training}" if training else ""}
<h2>Head scores</h2>
{heatmaps or '<p>No head claims ran.</p>'}
<h2>Attention patterns of head claims</h2>
{''.join(figures) or '<p>No head claims ran.</p>'}
</body></html>
"""
    path.write_text(page)


def comparison_lines(rows: list[dict], source: str, most: int = 10, warning: str | None = None) -> list[str]:
    flips = [r for r in rows if r["change"] in ("now FAILS", "now passes")]
    lines = [
        *([warning] if warning else []),
        f"compared with {source}: {len(flips)} verdict flip(s), "
        f"{sum(r['change'] == 'new' for r in rows)} new, {sum(r['change'] == 'gone' for r in rows)} gone"
    ]
    for r in flips:
        lines.append(f"  {r['id']}: {r['change']} ({r['before']['value']!r} -> {r['now']['value']!r})")
    moved = sorted((r for r in rows if r["delta"]), key=lambda r: -abs(r["delta"]))[:most]
    for r in moved:
        lines.append(f"  {r['id']}: {r['before']['value']:.6g} -> {r['now']['value']:.6g} (delta {r['delta']:+.3g})")
    for r in rows:
        if r["change"] in ("new", "gone", "value changed"):
            lines.append(f"  {r['id']}: {r['change']}")
    return lines


def write_reports(path: Path, run: dict, results: list[dict], comparison: dict | None = None) -> list[Path]:
    """Write PATH (JSON) and, beside it, PATH.md and PATH.html; returns the three paths.

    ``comparison`` ({"source": path, "rows": interp_claims.compare.compare(...)}) adds each claim's
    change since a previous report to all three."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    markdown, page = path.with_suffix(".md"), path.with_suffix(".html")
    write_json(path, run, results)
    write_markdown(markdown, run, results)
    write_html(page, run, results)
    if comparison is not None:
        data = json.loads(path.read_text())
        data["compare"] = comparison
        path.write_text(dumps(data))
        lines = comparison_lines(comparison["rows"], comparison["source"], most=50)
        with markdown.open("a") as out:
            out.write("\n## Since the previous report\n\n" + "\n".join(f"- {line.strip()}" for line in lines) + "\n")
        items = "".join(f"<li>{html.escape(line.strip())}</li>" for line in lines)
        page.write_text(page.read_text().replace("</body>", f"<h2>Since the previous report</h2><ul>{items}</ul></body>"))
    return [path, markdown, page]
