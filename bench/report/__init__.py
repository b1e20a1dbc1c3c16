"""Reports: results -> pandas tables -> seaborn figures -> Markdown and self-contained HTML.

``build_report(runs)`` writes ``reports/<run-id>/``; ``compare_runs(a, b)`` compares one metric across
models or across two runs with a Mann–Whitney U test on the raw latency samples.
"""
from .build import FORMATS, ReportResult, build_report
from .compare import METRICS, CompareResult, compare_runs

__all__ = ["build_report", "ReportResult", "compare_runs", "CompareResult", "FORMATS", "METRICS"]
