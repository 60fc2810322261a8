"""The HTML report as a reader sees it (issue 18): rendered by headless Chromium (Debian's
`chromium`; `.ci/run` installs it) at a laptop's width. A script run in the page measures what the
eye would: no two figures overlap, nothing is wider than the page, no text is smaller than 11 px,
and every attention picture fits its figure. A screenshot is kept in reports/ as an artifact.

The report holds what a real run's does: four 12 x 12 head-score tables, four 127-token attention
pictures (the claims' mixed-length input), a failed claim with its reason and an errored one.
"""

import json
import shutil
import subprocess

import pytest

from interp_claims.report import write_reports
from tests.helpers import ROOT
from tests.test_report import RUN

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")  # GitHub runners: Chrome
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)")

MEASURE = """
<script>
window.addEventListener('load', () => {
  const boxes = [...document.querySelectorAll('figure')].map(f => f.getBoundingClientRect());
  const overlaps = [];
  boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b, j) => {
    if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) overlaps.push([i, i + 1 + j]);
  }));
  const sizes = [...document.querySelectorAll('body *')]
    .filter(e => e.childNodes.length && [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()))
    .map(e => parseFloat(getComputedStyle(e).fontSize));
  const pictures = [...document.querySelectorAll('figure img.attention')].map(img => {
    const f = img.closest('figure').getBoundingClientRect(), r = img.getBoundingClientRect();
    return r.left >= f.left - 1 && r.right <= f.right + 1 && r.width > 100;
  });
  const out = document.createElement('pre');
  out.id = 'layout';
  out.textContent = JSON.stringify({overlaps, pageWidth: document.documentElement.scrollWidth,
    viewport: window.innerWidth, smallestText: Math.min(...sizes), pictures, figures: boxes.length});
  document.body.appendChild(out);
});
</script>
"""


def results() -> list[dict]:
    lower = [[0.0] * 127 for _ in range(127)]
    for q in range(127):
        lower[q][max(0, q - 60)] = 1.0
    scores = [[round(((layer * 12 + head) % 17) / 17, 2) for head in range(12)] for layer in range(12)]
    rows = []
    for i, (kind, head) in enumerate([("induction", "5.1"), ("previous_token", "4.11"), ("duplicate_token", "3.0"), ("induction", "7.10")]):
        rows.append({
            "id": f"heads.{kind}[{head}]", "behaviour": kind, "kind": "behaviour", "probe": "head_score", "passed": i != 3,
            "value": 0.9 if i != 3 else 0.1, "threshold": "> 0.4", "margin": 0.5 if i != 3 else -0.3, "source": "ARENA 1.2",
            "justification": "", "file": "f", "details": {"kind": f"{kind}-{i}", "all_heads": scores}, "seconds": 0.1,
            "outcome": "passed" if i != 3 else "failed", "reason": None if i != 3 else "differs from the stored snapshot",
            "pictures": [{"title": f"head {head} on row 1 of 24 of repeated random tokens (seed 0): BOS, then R twice, "
                                   f"R of 60 tokens (each row its own length, lengths 16-63 (24 rows)); first 127 positions",
                          "labels": [f"t{t}" for t in range(127)], "pattern": lower}],
        })
    rows.append({"id": "mine.raises", "behaviour": "mine", "kind": "sanity", "probe": "mine", "passed": False, "value": None,
                 "threshold": "> 0.5", "margin": None, "source": "s", "justification": "", "file": "f", "details": {},
                 "seconds": 0.0, "pictures": [], "outcome": "error", "reason": "KeyError: 'b'"})
    return rows


def test_the_report_reads_well_in_a_browser(tmp_path):
    path = tmp_path / "claims.json"
    write_reports(path, RUN, results())
    page = path.with_suffix(".html")
    measured = tmp_path / "measured.html"
    measured.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,2400"]
    dom = subprocess.run([*browser, "--virtual-time-budget=5000", "--dump-dom", measured.as_uri()],
                         capture_output=True, text=True, timeout=120)
    layout = json.loads(dom.stdout.split("<pre id=\"layout\">")[1].split("</pre>")[0].replace("&quot;", '"'))
    artifacts = ROOT / "reports"
    artifacts.mkdir(exist_ok=True)
    subprocess.run([*browser, f"--screenshot={artifacts / 'report-in-chromium.png'}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert layout["figures"] == 8 and layout["overlaps"] == [], layout  # 4 head tables, 4 pictures
    assert layout["pageWidth"] <= layout["viewport"], layout  # no horizontal scrolling
    assert layout["smallestText"] >= 11, layout
    assert layout["pictures"] == [True] * 4, layout
    text = page.read_text()
    assert "differs from the stored snapshot" in text and "error: KeyError: &#x27;b&#x27;" in text
    assert '{"texts"' not in text  # captions say what the input was in words
