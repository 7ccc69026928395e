"""The legal filter of training data (DESIGN.md, "Compliance"), with the shared compliance module.

A photo is flagged ``minor`` when any of its captions mentions a child
(``withsense.compliance.flag_image``). Training drops every pair whose photo is flagged or whose
text mentions a child (``withsense.compliance.mentions_child``), and nothing more. The report says
how many pairs of each kind were dropped and why (which rule, which terms).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from withsense.compliance import ImageFlags, flag_image, mentions_child

from withsense_train.data import Caption, Dataset, Judgment, TrainPair

PHOTO_FLAGGED = "photo flagged minor (one of its captions mentions a child)"
TEXT_CHILD = "text mentions a child"


@dataclass
class KindCount:
    total: int = 0
    kept: int = 0
    dropped_photo_flagged: int = 0
    dropped_text_child: int = 0  # photo not flagged, but the text mentions a child

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "kept": self.kept,
                "dropped_photo_flagged": self.dropped_photo_flagged,
                "dropped_text_child": self.dropped_text_child}


@dataclass
class FilterReport:
    photos: int = 0
    photos_flagged: int = 0
    kinds: dict[str, KindCount] = field(default_factory=dict)
    terms: Counter[str] = field(default_factory=Counter)  # child terms behind the drops

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": f"drop a pair if its {PHOTO_FLAGGED} or its {TEXT_CHILD}; nothing more",
            "photos": self.photos, "photos_flagged": self.photos_flagged,
            "photos_kept": self.photos - self.photos_flagged,
            "pairs": {kind: count.as_dict() for kind, count in self.kinds.items()},
            "top_terms": dict(self.terms.most_common(15)),
        }

    def lines(self) -> list[str]:
        """Human-readable summary, one line per kind."""
        out = [f"legal filter: {self.photos_flagged} of {self.photos} photos flagged minor "
               f"({PHOTO_FLAGGED})"]
        for kind, count in self.kinds.items():
            out.append(
                f"  {kind}: kept {count.kept} of {count.total}; dropped "
                f"{count.dropped_photo_flagged} (photo flagged) + {count.dropped_text_child} "
                f"({TEXT_CHILD} only)"
            )
        terms = ", ".join(f"{term} {n}" for term, n in self.terms.most_common(8))
        out.append(f"  most frequent child terms: {terms}")
        return out


@dataclass
class FilteredData:
    """The training data that the law allows, plus what was set aside."""

    dataset: Dataset
    flags: dict[str, ImageFlags]  # every train photo -> its flags
    positives: dict[str, list[Caption]]  # unflagged photo -> its captions
    judgments: list[Judgment]
    pairs: list[TrainPair]  # train_dataset.csv rows kept (reported; judgments carry the labels)
    report: FilterReport

    @property
    def photos(self) -> list[str]:
        """Unflagged train photos that have at least one caption, sorted."""
        return sorted(self.positives)

    @property
    def flagged(self) -> set[str]:
        return {image for image, flags in self.flags.items() if flags.minor}


def legal_filter(dataset: Dataset) -> FilteredData:
    report = FilterReport()
    captions_by_image = dataset.captions_by_image
    flags = {image: flag_image([c.text for c in captions_by_image.get(image, [])])
             for image in dataset.train_images}
    report.photos = len(flags)
    report.photos_flagged = sum(f.minor for f in flags.values())
    text_terms: dict[str, str | None] = {}

    def text_term(text: str) -> str | None:
        if text not in text_terms:
            text_terms[text] = mentions_child(text)
        return text_terms[text]

    def keep(kind: str, image: str, text: str) -> bool:
        count = report.kinds.setdefault(kind, KindCount())
        count.total += 1
        photo_flags = flags.get(image)
        if photo_flags is not None and photo_flags.minor:
            count.dropped_photo_flagged += 1
            for reason in photo_flags.reasons[:1]:
                report.terms[reason.rsplit(" mentions ", 1)[-1].strip("'")] += 1
            return False
        term = text_term(text)
        if term is not None:
            count.dropped_text_child += 1
            report.terms[term] += 1
            return False
        count.kept += 1
        return True

    positives: dict[str, list[Caption]] = {}
    for image, captions in sorted(dataset.positives().items()):
        kept = [c for c in captions if keep("caption_photo_positives", image, c.text)]
        if kept:
            positives[image] = kept
    pairs = [p for p in dataset.pairs if keep("train_dataset_rows", p.image, p.query_text)]
    judgments = []
    for judgment in dataset.judgments():
        kind = "expert_judgments" if judgment.expert_mean is not None else "crowd_only_judgments"
        if keep(kind, judgment.image, judgment.text):
            judgments.append(judgment)
    return FilteredData(dataset, flags, positives, judgments, pairs, report)
