"""Reading the Prometheus text format in the metrics tests, and the metrics the Grafana
dashboard (deploy/grafana/sluice.json) queries."""
import json
import re
import shutil
import subprocess

from pipeline import ROOT


def value(text: str, series: str) -> float:
    """The value of `series` (name and labels as written, e.g. 'x_total{type="echo"}')."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {series} in:\n{text}")


def series_names(text: str) -> set[str]:
    """Every metric name with a sample in `text`."""
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def dashboard_metrics(prefix: str) -> set[str]:
    """The metric names starting with `prefix` that deploy/grafana/sluice.json queries."""
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "sluice.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return {name for expr in exprs for name in re.findall(rf"\b{prefix}\w+", expr)}


HAVE_PROMTOOL = shutil.which("promtool") is not None


def promtool_check(text: str) -> subprocess.CompletedProcess:
    """`promtool check metrics` (Debian prometheus) of `text`."""
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
