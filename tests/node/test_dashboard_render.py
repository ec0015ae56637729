"""The dashboard's accuracy plot and rounds table, rendered from a snapshot."""

from __future__ import annotations

import re

from chainml.node.dashboard import Snapshot, render


def test_accuracy_per_round_is_plotted_point_by_point():
    snap = Snapshot({"name": "coordinator"})
    snap.accuracy = {7: [(1, 0.84), (2, 0.915), (3, 0.93)]}
    snap.rounds = [{"job": 7, "round": 3, "accuracy": "0.930"}]
    page = render(snap)
    chart = re.search(r'<svg id="accuracy-chart-7".*?</svg>', page).group(0)
    assert chart.count("<circle") == 3
    assert "round 2: 0.915" in chart and "round 3" in chart
    ys = [float(y) for y in re.findall(r'cy="([0-9.]+)"', chart)]
    assert ys[0] > ys[1] > ys[2]  # higher accuracy is drawn higher up
    assert 'id="rounds"' in page


def test_hostile_text_is_escaped():
    snap = Snapshot({"name": "<script>alert(1)</script>"})
    snap.rounds = [{"job": 1, "round": 1, "record": "<img src=x onerror=alert(1)>"}]
    page = render(snap)
    assert "<script>alert" not in page and "<img src=x" not in page
