"""Small synthetic data sets in the customer's format, drawn with PIL, for tests.

Each photo is a flat background with one to three shapes of one colour ("two green squares on a
yellow background"). Each photo gets five captions (``extra/captions.txt``); caption ``#2`` is
the query of the expert and crowd judgments, like the customer's data. Judgments follow the
captions: a pair's expert scores grow with how many attributes (shape, colour, background, count)
the photo shares with the caption's own photo, and the crowd votes likewise. Some captions say a
child drew the picture, so that the legal filter has photos to flag and texts to drop.

``python -m withsense_train.synthetic OUT_DIR --images N [--test-images M] [--seed S]``
"""

from __future__ import annotations

import argparse
import csv
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle")
COLORS = {
    "red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220),
    "yellow": (240, 220, 30), "white": (245, 245, 245), "black": (15, 15, 15),
    "orange": (250, 140, 20), "purple": (140, 40, 170),
}
BACKGROUNDS = ("blue", "green", "white", "black", "yellow", "red")
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
SIZE = 128


@dataclass(frozen=True)
class Scene:
    shape: str
    color: str
    background: str
    count: int
    child: int  # -1: no caption mentions a child; else the number of the caption that does

    def overlap(self, other: Scene) -> float:
        """0..1: the share of the caption's attributes this scene shows (shape, colour weigh 2)."""
        score = 2 * (self.shape == other.shape) + 2 * (self.color == other.color)
        score += (self.background == other.background) + (self.count == other.count)
        return score / 6.0


def _plural(scene: Scene) -> str:
    return scene.shape + ("s" if scene.count > 1 else "")


def captions(scene: Scene) -> list[str]:
    n, word = scene.count, COUNT_WORDS[scene.count]
    article = "a" if n == 1 else word
    what = f"{scene.color} {_plural(scene)}"
    texts = [
        f"{article} {what} on a {scene.background} background",
        f"{word.capitalize()} {what} drawn on {scene.background}",
        f"a {scene.background} picture with {article} {what}",
        f"{what} over a plain {scene.background} backdrop",
        f"{word} {_plural(scene)} coloured {scene.color} on {scene.background}",
    ]
    if scene.child >= 0:
        texts[scene.child] = f"a child drew {article} {what} on {scene.background} paper"
    return texts


def draw(scene: Scene, rng: random.Random) -> Image.Image:
    background = COLORS[scene.background]
    image = Image.new("RGB", (SIZE, SIZE), background)
    pen = ImageDraw.Draw(image)
    # Mild texture so the photos are not perfectly flat.
    for _ in range(30):
        x, y = rng.randrange(SIZE), rng.randrange(SIZE)
        shade = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in background)
        pen.ellipse((x - 4, y - 4, x + 4, y + 4), fill=shade)
    placed: list[tuple[int, int, int]] = []
    radius = {1: 30, 2: 22, 3: 18}[scene.count] + rng.randint(-3, 3)
    margin = 10 + radius  # the tower's center crop keeps the middle 87.5 %
    attempts = 0
    while len(placed) < scene.count:
        attempts += 1
        x, y = rng.randint(margin, SIZE - margin), rng.randint(margin, SIZE - margin)
        if all((x - px) ** 2 + (y - py) ** 2 > (r + radius + 4) ** 2 for px, py, r in placed):
            placed.append((x, y, radius))
        elif attempts % 50 == 0:  # a crowded start: place them again
            placed.clear()
    color = COLORS[scene.color]
    for x, y, r in placed:
        box = (x - r, y - r, x + r, y + r)
        if scene.shape == "circle":
            pen.ellipse(box, fill=color)
        elif scene.shape == "square":
            pen.rectangle(box, fill=color)
        else:
            pen.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=color)
    return image.filter(ImageFilter.GaussianBlur(0.6))


def _scene(rng: random.Random, child_fraction: float) -> Scene:
    shape = rng.choice(SHAPES)
    background = rng.choice(BACKGROUNDS)
    color = rng.choice([c for c in COLORS if c != background])
    child = rng.choice((2, 4)) if rng.random() < child_fraction else -1
    return Scene(shape, color, background, rng.randint(1, 3), child)


def _expert_scores(rng: random.Random, own: bool, overlap: float) -> tuple[int, int, int]:
    if own:
        return tuple(sorted((4, 4, rng.choice((3, 4, 4)))))  # type: ignore[return-value]
    base = 1 + 3 * overlap ** 1.5
    return tuple(max(1, min(4, round(base + rng.choice((-0.6, 0, 0, 0.6))))) for _ in range(3))  # type: ignore[return-value]


def generate(
    out_dir: Path | str, *, images: int = 60, test_images: int = 0, seed: int = 0,
    child_fraction: float = 0.15, judged_per_query: int = 6, crowd_per_query: int = 10,
) -> Path:
    """Writes a data set in the customer's format to ``out_dir`` and returns it."""
    out = Path(out_dir)
    rng = random.Random(seed)
    (out / "train_images").mkdir(parents=True, exist_ok=True)
    (out / "extra").mkdir(exist_ok=True)
    scenes: dict[str, Scene] = {}
    for i in range(images):
        name = f"{seed:03d}{i:05d}_synthetic.jpg"
        scene = _scene(rng, child_fraction)
        scenes[name] = scene
        draw(scene, rng).save(out / "train_images" / name, quality=92)
    names = sorted(scenes)
    with open(out / "extra" / "captions.txt", "w", encoding="utf-8") as handle:
        for name in names:
            for n, text in enumerate(captions(scenes[name])):
                handle.write(f"{name}#{n}\t{text}\n")

    expert_rows, crowd_rows, train_rows = [], [], []
    for query_image in names:
        query_scene = scenes[query_image]
        query_id = f"{query_image}#2"
        query_text = captions(query_scene)[2]
        others = [n for n in names if n != query_image]
        # Judge the own photo, some similar photos and some random ones (as in Flickr8k).
        similar = sorted(others, key=lambda n: -scenes[n].overlap(query_scene))[: judged_per_query]
        judged = [query_image, *rng.sample(similar, min(len(similar), judged_per_query // 2))]
        judged += rng.sample(others, min(len(others), judged_per_query - len(judged) + 1))
        for image in dict.fromkeys(judged):
            overlap = scenes[image].overlap(query_scene)
            scores = _expert_scores(rng, image == query_image, overlap)
            expert_rows.append((image, query_id, *scores))
            train_rows.append((image, query_id, query_text))
        crowd_images = list(dict.fromkeys(judged + rng.sample(others, min(len(others), crowd_per_query))))
        for image in crowd_images:
            p_yes = 0.95 if image == query_image else max(0.02, scenes[image].overlap(query_scene) ** 2)
            votes = 3
            yes = sum(rng.random() < p_yes for _ in range(votes))
            crowd_rows.append((image, query_id, f"{yes / votes:.15g}", yes, votes - yes))
    rng.shuffle(train_rows)
    with open(out / "train_dataset.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "query_id", "query_text"])
        writer.writerows(sorted(train_rows))
    _write_tsv(out / "ExpertAnnotations.tsv", sorted(expert_rows))
    _write_tsv(out / "CrowdAnnotations.tsv", sorted(crowd_rows))

    if test_images:
        (out / "test_images").mkdir(exist_ok=True)
        rows = []
        for i in range(test_images):
            name = f"{seed:03d}{i:05d}_synthetic_test.jpg"
            scene = _scene(rng, child_fraction)
            draw(scene, rng).save(out / "test_images" / name, quality=92)
            rows += [(f"{name}#{n}", text, name) for n, text in enumerate(captions(scene))]
        with open(out / "test_queries.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="|")
            writer.writerow(["", "query_id", "query_text", "image"])
            writer.writerows((i, *row) for i, row in enumerate(rows))
    return out


def _write_tsv(path: Path, rows: list[tuple]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write("\t".join(str(v) for v in row) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m withsense_train.synthetic",
        description="Write a small synthetic data set in the customer's format.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--images", type=int, default=60, help="train photos (default 60)")
    parser.add_argument("--test-images", type=int, default=0,
                        help="also a test half: test_images/ and test_queries.csv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child-fraction", type=float, default=0.15,
                        help="share of photos with a caption that mentions a child")
    args = parser.parse_args(argv)
    out = generate(args.out_dir, images=args.images, test_images=args.test_images,
                   seed=args.seed, child_fraction=args.child_fraction)
    print(f"wrote a synthetic data set to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
