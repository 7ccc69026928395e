"""The ``image_int8`` stage: records which image tower variant the heads were trained on and,
for int8, ships the calibration table the features were made with (``withsense.model.image_int8``),
so that the worker runs the same int8 graph (config.json ``image_precision``)."""

from __future__ import annotations

import json

from withsense.model.artifact import update_config
from withsense.model.image_int8 import CALIBRATION_FILE, CONFIG_KEY, RECIPE, table_sha256

from withsense_train.features import INT8_CALIBRATION_PHOTOS
from withsense_train.run import TrainRun


def image_int8_stage(run: TrainRun) -> None:
    table = run.cache.int8_table if run.cache.image_precision == "int8" else None
    if table is None:
        update_config(run.out, {CONFIG_KEY: {"heads_trained_on": "fp32"}})
        return
    (run.out / CALIBRATION_FILE).write_text(json.dumps(table, sort_keys=True) + "\n")
    section = {"heads_trained_on": "int8", "file": CALIBRATION_FILE, "recipe": RECIPE,
               "table_sha256": table_sha256(table)}
    update_config(run.out, {CONFIG_KEY: section})
    run.add_component("image_int8", [CALIBRATION_FILE], {
        **section, "calibration_photos": f"{INT8_CALIBRATION_PHOTOS} allowed training photos "
        "(seeded sample), each also mirrored",
        "note": "The heads learnt from the int8 tower's features; the worker quantizes the "
                "exported fp32 graph with this table at load (WITHSENSE_WORKER_IMAGE_PRECISION).",
    })
