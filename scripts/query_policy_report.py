"""Block rate on child queries and false-block rate on innocent ones, per language, for the query
policy; and every error with the rule that decided it.

    python scripts/query_policy_report.py                 # lexicon only (seconds)
    python scripts/query_policy_report.py --semantic      # + the semantic check (loads MiniLM)
    python scripts/query_policy_report.py --json

Columns, all measured in this run on tests/compliance/data/queries_<lang>.tsv:
  as written   the lexicon on the text as typed (the baseline: no disguise undone)
  lexicon      the lexicon with leetspeak, look-alike letters, spacing, transliteration and
               misspellings undone (the gateway's first check)
  policy       lexicon, then the English path's semantic check: the text tower's own space
               (MiniLM, no trained head) with the artifact's threshold for it (--semantic; every
               language through MiniLM: Russian queries take the multilingual path in service,
               see benchmarks/bench_query_threshold.py)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "compliance" / "data"
LANGUAGES = ("en", "ru")


def _embedder(model_dir: Path | None):
    """The English path's check: the text tower's own vectors (no trained head), with the
    artifact's threshold for that space (the default one for an artifact without it)."""
    import torch
    from withsense.compliance import DEFAULT_TOWER_THRESHOLD, tower_threshold
    from withsense.model.artifact import load_artifact
    from withsense.model.runtime import resolve_artifact_dir
    from withsense.model.towers import TextTower

    torch.set_num_threads(1)
    artifact_dir = resolve_artifact_dir(model_dir)
    config = load_artifact(artifact_dir).config if artifact_dir is not None else {}
    tower = TextTower()

    def embed(texts: list[str]):
        with torch.inference_mode():
            return tower.encode(texts).numpy()

    threshold = tower_threshold(config)
    return embed, DEFAULT_TOWER_THRESHOLD if threshold is None else threshold


def main(argv: list[str] | None = None) -> int:
    from withsense.compliance.mentions import child_mention_rules
    from withsense.compliance.query_eval import (
        evaluate,
        lexicon_as_written,
        lexicon_policy,
        load_labelled,
        semantic_policy,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--semantic", action="store_true", help="add the semantic check")
    parser.add_argument("--model-dir", type=Path, help="artifact (default: the shipped one)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    modes = {"as written": lexicon_as_written, "lexicon": lexicon_policy}
    if args.semantic:
        embed, threshold = _embedder(args.model_dir)
        modes[f"policy (semantic >= {threshold:.3f})"] = semantic_policy(embed, threshold)
    final = list(modes)[-1]
    results: dict = {}
    for lang in LANGUAGES:
        queries = load_labelled(DATA / f"queries_{lang}.tsv")
        reports, ms_per_query = {}, {}
        lexicon_policy([q.query for q in queries])  # load the analysers before timing
        for mode, decide in modes.items():
            child_mention_rules.cache_clear()  # time the rules, not the memo
            started = time.perf_counter()
            reports[mode] = evaluate(queries, decide)
            ms_per_query[mode] = (time.perf_counter() - started) * 1000 / len(queries)
        results[lang] = {
            "n_child": reports[final].n_child,
            "n_innocent": reports[final].n_innocent,
            "modes": {mode: {"block_rate": r.block_rate, "false_block_rate": r.false_block_rate,
                             "ms_per_query": ms_per_query[mode]}
                      for mode, r in reports.items()},
            "errors": [{"label": o.query.label, "query": o.query.query, "note": o.query.note,
                        "decided_by": o.explain()} for o in reports[final].errors],
            "caught_by_disguise_rules": [
                {"query": o.query.query, "rule": o.decision.rule, "matched": o.decision.matched}
                for o in reports["lexicon"].outcomes
                if o.decision.blocked and "(" in o.decision.rule and o.query.label == "child"
            ],
        }
    if args.json:
        json.dump(results, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 0
    print("| language | child queries | innocent queries | mode | blocked (child) "
          "| false blocks (innocent) | ms/query |")
    print("|---|---|---|---|---|---|---|")
    for lang, result in results.items():
        for mode, rates in result["modes"].items():
            print(f"| {lang} | {result['n_child']} | {result['n_innocent']} | {mode} | "
                  f"{rates['block_rate']:.1%} | {rates['false_block_rate']:.1%} | "
                  f"{rates['ms_per_query']:.2f} |")
    for lang, result in results.items():
        print(f"\nErrors of '{final}', {lang}:")
        for error in result["errors"] or [{"label": "-", "query": "none", "decided_by": "", "note": ""}]:
            note = f"  [{error['note']}]" if error["note"] else ""
            print(f"  {error['label']:8s} {error['query']!r}: {error['decided_by']}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
