"""Printing results for people (rich tables) or programs (--json)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
# Errors are not wrapped at the terminal's width: a path or an address in one stays whole in logs
# (kubectl logs, a test's captured stderr) and can be copied.
err_console = Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def search_response_dict(query: str, region: str, result) -> dict[str, Any]:
    """A `withsense.client.SearchResult` for --json; fields new to the proto come along."""
    return {
        "query": query, "region": region, "blocked": result.blocked,
        "disclaimer": result.disclaimer, "reason": result.reason,
        "model_version": result.model_version,
        "hits": [{"image_id": h.image_id, "uri": h.uri, "score": round(h.score, 4),
                  "withheld": h.withheld, "disclaimer": h.disclaimer, "reason": h.reason,
                  "evidence": list(h.evidence), **h.extra}
                 for h in result.hits],
    }


def print_search(result: dict[str, Any]) -> None:
    region = result["region"] or "unknown"
    console.print(f"\n[bold]{result['query']}[/bold]  [dim](region: {region})[/dim]")
    if result["blocked"]:
        console.print(f"  [red]blocked[/red]: {result['disclaimer']}")
        console.print(f"  [dim]reason: {result['reason']}[/dim]")
        return
    table = Table()
    table.add_column("#", justify="right")
    table.add_column("photo")
    table.add_column("p(match)", justify="right")
    table.add_column("evidence")
    for rank, hit in enumerate(result["hits"], start=1):
        photo = (f"[yellow]{hit['disclaimer']}[/yellow] [dim]({hit['reason']})[/dim]"
                 if hit["withheld"] else hit["uri"])
        table.add_row(str(rank), photo, f"{hit['score']:.3f}", _evidence(hit))
    console.print(table)
    console.print(f"  [dim]reason: {result['reason']}[/dim]")


def print_index(report: dict[str, Any]) -> None:
    console.print(f"indexed {report['indexed']}, unchanged {report['unchanged']}, "
                  f"failed {report['failed']} (flagged minor among indexed: {report['flagged']}: "
                  f"by description {report.get('flagged_by_description', 0)}, by sight "
                  f"{report.get('flagged_by_sight', 0)}; flags changed on re-indexing: "
                  f"{report.get('flags_changed', 0)})")
    for failure in report["failures"]:
        console.print(f"  [red]failed[/red] {failure['uri']}: {failure['reason']}")


def _evidence(hit: dict[str, Any]) -> str:
    """What a hit's score rests on; a withheld hit shows none (nothing about it leaves)."""
    if hit["withheld"]:
        return "-"
    return ", ".join(hit["evidence"]) or "weak"
