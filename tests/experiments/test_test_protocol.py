"""Chapter 9's settings: the comment beside the protocol tuning record says what its rows show."""

from vgg_lib.experiments.test_protocol import PROTOCOL_TUNING, SETTINGS

IMAGES = 2_000  # validation images per row (the record's comment)
COLUMNS = ("single crop", "flip", "dense Q=40", "dense Q=48", "dense {32,40,48}", "dense {32,48,64}",
           "multi-crop {32,40,48}", "multi-crop {32,48,64}")


def _rows():
    return {name: dict(zip(COLUMNS, accuracies)) for name, *accuracies in PROTOCOL_TUNING}


def _images(difference):
    count = round(difference * IMAGES)
    assert abs(difference * IMAGES - count) < 1e-6, "each accuracy is a whole number of images"
    return count


def test_the_chosen_jitter_is_the_highest_jittered_row_under_every_protocol():
    rows = _rows()
    jittered = [name for name in rows if name.startswith("[")]
    assert len(jittered) == 3 and SETTINGS["quick"].jitter == (32, 40)
    margins = []
    for column in COLUMNS:
        best = max(jittered, key=lambda name: rows[name][column])
        assert best == "[32, 40]", column
        margins.append(_images(rows["[32, 40]"][column] - rows["[32, 48]"][column]))
    assert (min(margins), max(margins)) == (29, 79)  # "ahead of [32, 48] by 29 to 79 images"


def test_the_chosen_scales_margins_are_the_comments():
    rows = _rows()
    assert SETTINGS["quick"].scales == (32, 40, 48)
    dense = [_images(r["dense {32,40,48}"] - r["dense {32,48,64}"]) for r in rows.values()]
    crops = [_images(r["multi-crop {32,40,48}"] - r["multi-crop {32,48,64}"]) for r in rows.values()]
    assert dense == [17, 2, 1, 27]
    assert crops == [48, 19, 22, -18] and list(rows)[-1] == "[32, 64]"
