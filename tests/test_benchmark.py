"""`make bench-quick`: the benchmark machinery runs end to end and writes well-formed results (figures not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.report import README_END, README_START, update_readme

NAMES = {
    "quote_collection",
    "quote_dataframe",
    "no_cache_dataframe",
    "cache",
    "disk_io",
    "serializer",
    "dask",
    "overhead",
}


def test_bench_quick_writes_results(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads((tmp_path / "results.json").read_text())
    assert set(document) >= {"machine", "rows_per_month", "results"}
    assert document["machine"]["cores"] >= 1
    names = {r["name"] for r in document["results"]}
    assert names >= NAMES
    for result in document["results"]:
        assert set(result) >= {"name", "metric", "baseline", "optimized", "ratio"}
        assert result["baseline"] > 0 and result["optimized"] > 0
        assert result["ratio"] == round(result["baseline"] / result["optimized"], 4)
    table = (tmp_path / "results.md").read_text()
    assert all(f"`{name}`" in table for name in NAMES)
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")


def test_readme_block_is_replaced_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold\n{README_END}\nrest\n")
    document = {
        "rows_per_month": 10,
        "machine": {"cores": 2, "prefect": "3"},
        "results": [{"name": "cache", "ratio": 21.5, "target": ">= 20x", "met": True}],
    }
    assert update_readme(document, readme)
    text = readme.read_text()
    assert "old" not in text and "| `cache` | 21.50x | >= 20x | yes |" in text
    assert text.startswith("intro\n") and text.endswith(f"{README_END}\nrest\n")
