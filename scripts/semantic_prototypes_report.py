"""Does judging queries without non-person senses (``semantic_text``), or another prototype set,
change the semantic child check? Measured in the shipped artifact's text space, in one run:

    python scripts/semantic_prototypes_report.py [--captions PATH] [--json]

For each variant the threshold is chosen as the trainer chooses it (at most 1% of the captions
without child terms blocked), then: child recall on captions with child terms (the trainer's
proxy), and the false-block rate of the whole policy on the innocent English queries of
tests/compliance/data/queries_en.tsv (the share of innocent queries blocked by either check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CAPTIONS = ROOT.parent.parent / "shared" / "data" / "withsense" / "extra" / "captions.txt"
MAX_FALSE_BLOCK_RATE = 0.01

# The prototypes before this comparison: two generic scenes pulled innocent queries ("two dogs
# playing" -> "small children playing together", "college students in a library" -> "kids at
# school"); the current set words them as scenes of children.
REWORDED = {"a group of small children playing": "small children playing together",
            "schoolchildren in a classroom": "kids at school"}


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    from query_policy_report import _embedder
    from withsense.compliance import (
        CHILD_PROTOTYPE_TEXTS,
        SemanticChildCheck,
        choose_threshold,
        mentions_child,
        semantic_text,
    )
    from withsense.compliance.query_eval import evaluate, load_labelled, semantic_policy
    from withsense.descriptions import read_descriptions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captions", type=Path, default=DEFAULT_CAPTIONS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.captions.is_file():
        print(f"no captions at {args.captions}", file=sys.stderr)
        return 2
    embed, shipped_threshold = _embedder(None)
    captions = [c for texts in read_descriptions(args.captions).values() for c in texts]
    child = [c for c in captions if mentions_child(c)]
    adult = [c for c in captions if not mentions_child(c)]
    child_vectors = embed(child)
    adult_raw = embed(adult)
    adult_masked = embed([semantic_text(c) for c in adult])
    queries = [q for q in load_labelled(ROOT / "tests/compliance/data/queries_en.tsv")]

    earlier = [REWORDED.get(p, p) for p in CHILD_PROTOTYPE_TEXTS]
    variants = {
        "earlier prototypes, query as typed": (earlier, False),
        "earlier prototypes, semantic_text": (earlier, True),
        "earlier without its 2 generic prototypes, semantic_text": (
            [p for p in earlier if p not in REWORDED.values()], True),
        "current prototypes (2 reworded), semantic_text": (list(CHILD_PROTOTYPE_TEXTS), True),
    }
    rows = []
    for name, (prototypes, masked) in variants.items():
        check = SemanticChildCheck(embed(prototypes), threshold=1.0)
        adult_sims = check.similarities(adult_masked if masked else adult_raw)
        child_sims = check.similarities(child_vectors)
        threshold = choose_threshold(child_sims, adult_sims, MAX_FALSE_BLOCK_RATE)
        decide = semantic_policy(embed, threshold, prototypes=prototypes, judge_semantic_text=masked)
        report = evaluate(queries, decide)
        rows.append({"variant": name, "threshold": threshold,
                     "child_caption_recall": float(np.mean(child_sims >= threshold)),
                     "adult_caption_false_blocks": float(np.mean(adult_sims >= threshold)),
                     "en_query_false_blocks": report.false_block_rate,
                     "en_child_queries_blocked": report.block_rate})
    if args.json:
        print(json.dumps({"shipped_threshold": shipped_threshold, "n_child_captions": len(child),
                          "n_adult_captions": len(adult), "rows": rows}, indent=2))
        return 0
    print(f"{len(child)} captions with child terms, {len(adult)} without; shipped threshold "
          f"{shipped_threshold:.3f}\n")
    print("| variant | threshold | child captions caught | adult captions blocked "
          "| EN innocent queries blocked | EN child queries blocked |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['threshold']:.3f} | {r['child_caption_recall']:.1%} | "
              f"{r['adult_caption_false_blocks']:.1%} | {r['en_query_false_blocks']:.1%} | "
              f"{r['en_child_queries_blocked']:.1%} |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
