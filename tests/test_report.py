"""The report writers: JSON, Markdown and a self-contained HTML page with PNG heatmaps."""

import base64
import json

import pytest
import re
import struct
import zlib

from interp_claims.report import counts_by_kind, png_heatmap, summary_lines, write_reports

RUN = {
    "model": "embedded", "family": "embedded", "device": "cpu", "device_name": "cpu", "dtype": "float32",
    "weights": "raw", "versions": {"torch": "x"}, "forward_passes": 2, "forward_seconds": 1.0,
    "claim_seconds": 1.2, "model_load_seconds": 3.0,
}
RESULTS = [
    {"id": "heads.induction[5.1]", "behaviour": "induction", "kind": "behaviour", "probe": "head_score", "passed": True, "value": 0.98,
     "threshold": "> 0.4", "margin": 0.58, "source": "ARENA 1.2", "justification": "", "file": "f", "details": {},
     "seconds": 0.1, "pictures": [{"title": "head 5.1", "labels": ["a", "b"], "pattern": [[1.0, 0.0], [0.5, 0.5]]}]},
    {"id": "heads.induction[5.5]", "behaviour": "induction", "kind": "behaviour", "probe": "head_score", "passed": False, "value": 0.01,
     "threshold": "> 0.4", "margin": -0.39, "source": "ARENA 1.2", "justification": "", "file": "f", "details": {},
     "seconds": 0.1, "pictures": []},
]


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    idat_length = struct.unpack(">I", data[33:37])[0]
    return width, height, zlib.decompress(data[41 : 41 + idat_length])


def test_png_heatmap_pixels():
    width, height, raw = decode_png(png_heatmap([[1.0, 0.0]], cell=2))
    assert (width, height) == (4, 2)
    assert raw == b"\x00\x00\x00\xff\xff" * 2  # filter byte, black black white white, per row


def test_reports_hold_every_claim_and_embed_pictures(tmp_path):
    json_path, markdown, page = write_reports(tmp_path / "out" / "claims.json", RUN, RESULTS)
    data = json.loads(json_path.read_text())
    assert [c["id"] for c in data["claims"]] == ["heads.induction[5.1]", "heads.induction[5.5]"]
    assert {"passed", "value", "threshold", "source", "behaviour"} <= set(data["claims"][0])
    assert "| heads.induction[5.5] | behaviour | **NO** |" in markdown.read_text()
    assert "| value | published | threshold |" in markdown.read_text()
    assert "1/2 claims passed, 1 failed: behaviour 1/2 passed." in markdown.read_text()
    html = page.read_text()
    images = re.findall(r"base64,([A-Za-z0-9+/=]+)", html)
    assert len(images) == 2 and decode_png(base64.b64decode(images[0]))[:2] == (12, 12)  # the pattern
    assert decode_png(base64.b64decode(images[1]))[:2] == (200, 2)  # its colour scale
    assert "http" not in html  # opens offline: nothing to fetch


def test_summary_folds_cases_and_flags_failures():
    lines = summary_lines(RUN, RESULTS)
    row = next(line for line in lines if line.startswith("heads.induction"))
    assert "1/2" in row and "FAIL" in row and "0.01" in row
    assert "ratio 1.20" in lines[-1]


def test_html_summarises_by_behaviour_and_draws_the_layer_by_head_scores(tmp_path):
    scores = [[0.0] * 12 for _ in range(12)]
    scores[5][1] = 0.98
    result = {**RESULTS[0], "details": {"kind": "induction", "all_heads": scores}}
    _, _, page = write_reports(tmp_path / "claims.json", RUN, [result, RESULTS[1]])
    text = page.read_text()
    assert "<td>induction</td><td>behaviour</td><td class='fail'>1/2</td>" in text
    assert "<b>induction</b> score of every head" in text
    assert "title='5.1'>0.98</td>" in text and "outline:3px solid #d00" in text  # the claimed head, outlined
    assert text.count("outline:3px") == 1


def test_a_patching_sweep_is_drawn_with_its_claimed_heads_outlined_and_negative_cells_red(tmp_path):
    table = [[0.0] * 12 for _ in range(12)]
    table[9][9], table[10][7] = 0.264, -0.48
    details = {"kind": "patching z (logit_diff)", "all_heads": table, "claimed_heads": ["9.9", "10.7"]}
    result = {**RESULTS[0], "id": "ioi.patching.head-output-sweep", "details": details}
    _, _, page = write_reports(tmp_path / "claims.json", RUN, [result])
    text = page.read_text()
    assert "<b>patching z (logit_diff)</b> recovery when each head alone is restored" in text
    assert text.count("outline:3px") == 2  # both claimed heads, not one read from the claim's id
    assert "background:rgb(255,133,133);color:#000;outline:3px solid #d00' title='10.7'>-0.48</td>" in text


def test_sanity_and_behaviour_are_counted_apart():
    sanity = {**RESULTS[0], "id": "normalisation.x", "kind": "sanity"}
    assert counts_by_kind([*RESULTS, sanity]) == "behaviour 1/2 passed, sanity 1/1 passed"


def test_predictions_are_counted_apart_and_published_values_shown_beside_measured(tmp_path):
    published = {**RESULTS[0], "published": {"value": 0.931, "source": "TransformerLens Exploratory demo", "setup": "[R, R]"}}
    prediction = {**RESULTS[0], "id": "ablation.x", "kind": "prediction", "published": None}
    results = [published, prediction, RESULTS[1]]
    assert counts_by_kind(results) == "behaviour 1/2 passed, prediction 1/1 passed (never checked on real GPT-2)"
    lines = summary_lines(RUN, results)
    assert "published" in lines[1] or "published" in lines[2]
    assert any(line.startswith("ablation.x") and "(prediction)" in line for line in lines)
    _, markdown, page = write_reports(tmp_path / "claims.json", RUN, results)
    assert "| heads.induction[5.1] | behaviour | yes | 0.98 | 0.931 |" in markdown.read_text()
    assert "| ablation.x | prediction | yes | 0.98 | (prediction) |" in markdown.read_text()
    assert "title='TransformerLens Exploratory demo; [R, R]'>0.931</td>" in page.read_text()


def test_reports_write_strict_json_without_bare_nan(tmp_path):
    """A NaN or infinite value (a claim that could not be measured) is written as a string JSON
    tools read ("NaN", "Infinity"), not Python's bare NaN, which jq and JavaScript refuse."""
    broken = {**RESULTS[1], "value": float("nan"), "margin": None, "details": {"per_lag": [float("inf"), -float("inf")]}}
    json_path, _, _ = write_reports(tmp_path / "claims.json", RUN, [RESULTS[0], broken])
    text = json_path.read_text()
    assert "NaN" in text and json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the report"))
    claims = json.loads(text)["claims"]
    assert claims[1]["value"] == "NaN" and claims[1]["details"]["per_lag"] == ["Infinity", "-Infinity"]
