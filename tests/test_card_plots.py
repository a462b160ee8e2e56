"""The dataset card's plots: the same bytes for the same data whatever was drawn before, repeated
image sizes drawn once enough, and every text inside the figure for few and for many rows."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hf_mmbuilder.publishing.card import PLOT_DPI, PLOT_TITLES, Histogram, _capped_repeats, render_plots


def plot_stats(text_lengths=(), turns=(), images_per_row=None, widths=(), heights=(), audio=(), video=()) -> dict:
    """The part of collect_statistics' result render_plots reads: ``text_lengths``/``turns`` as
    ``(value, rows)`` pairs, ``images_per_row`` as {images: rows}."""
    def histogram(pairs):
        values, counts = zip(*pairs) if pairs else ((), ())
        return Histogram(np.asarray(values, dtype=np.int64), np.asarray(counts, dtype=np.int64))

    images_per_row = images_per_row or {}
    return {"images_per_row": images_per_row, "values": {
        "text_length": histogram(list(text_lengths)), "turns": histogram(list(turns)),
        "images_per_row": histogram(list(images_per_row.items())),
        "image_width": np.asarray(widths, dtype=np.int64), "image_height": np.asarray(heights, dtype=np.int64),
        "audio_duration": np.asarray(audio, dtype=np.float64), "video_duration": np.asarray(video, dtype=np.float64)}}


def ten_rows() -> dict:
    return plot_stats(text_lengths=[(length, 1) for length in (3, 5, 8, 13, 21, 34, 55, 89, 144, 233)],
                      turns=[(1, 4), (2, 6)], images_per_row={0: 3, 1: 7}, widths=[32, 64], heights=[20, 48],
                      audio=[1.5], video=[2.25])


def ten_million_rows() -> dict:
    rng = np.random.default_rng(0)
    rows = 10_000_000
    lengths = np.arange(1, 1_200_001, 7)
    return plot_stats(
        text_lengths=zip(lengths.tolist(), rng.multinomial(rows, np.full(len(lengths), 1 / len(lengths))).tolist()),
        turns=zip(range(1, 301), rng.multinomial(rows, np.full(300, 1 / 300)).tolist()),
        images_per_row=dict(enumerate(rng.multinomial(rows, [0.05, 0.6, 0.2, 0.1, 0.03, 0.01, 0.005, 0.005]).tolist())),
        widths=rng.integers(100, 120_000, 5000), heights=rng.integers(100, 90_000, 5000),
        audio=rng.uniform(0.1, 86_400, 5000), video=rng.uniform(1000.0, 1000.002, 500))


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.mark.parametrize("stats", [ten_rows(), ten_million_rows()], ids=["10 rows", "10M rows"])
def test_every_text_stays_inside_the_figure(stats):
    plots = render_plots(stats)
    assert list(plots) == list(PLOT_TITLES)
    for name, png in plots.items():
        image = pixels(png)
        # tight_layout's border is 1.08 font sizes (12 px at 80 dpi): a clipped text would reach the edge.
        edges = np.concatenate([image[:4].reshape(-1, 3), image[-4:].reshape(-1, 3),
                                image[:, :4].reshape(-1, 3), image[:, -4:].reshape(-1, 3)])
        assert (edges == 255).all(), name
        assert (image != 255).any(axis=2).sum() > 1000, name


def test_each_plot_is_the_same_bytes_drawn_alone():
    stats = ten_million_rows()
    together = render_plots(stats)
    assert render_plots(stats) == together
    values = stats["values"]
    alone = {
        "text_length.png": plot_stats(text_lengths=zip(values["text_length"].values.tolist(), values["text_length"].counts.tolist()),
                                      turns=zip(values["turns"].values.tolist(), values["turns"].counts.tolist())),
        "images_per_row.png": plot_stats(images_per_row=stats["images_per_row"]),
        "image_sizes.png": plot_stats(widths=values["image_width"], heights=values["image_height"]),
        "audio_duration.png": plot_stats(audio=values["audio_duration"]),
        "video_duration.png": plot_stats(video=values["video_duration"]),
    }
    for name, part in alone.items():
        drawn = render_plots(part)
        assert drawn[name] == together[name], name
    assert drawn.keys() == {"video_duration.png"}


def first_occurrences(points: np.ndarray, repeats: int) -> np.ndarray:
    """Mask of the points among the first ``repeats`` occurrences of their value, in order."""
    seen: dict = {}
    keep = np.zeros(len(points), dtype=bool)
    for index, point in enumerate(map(tuple, points.tolist())):
        seen[point] = seen.get(point, 0) + 1
        keep[index] = seen[point] <= repeats
    return keep


def test_markers_past_255_on_one_spot_change_no_byte():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(1)
    spots = np.array([[640, 480], [641, 480], [643, 481], [700, 500], [20, 30]])
    points = np.concatenate([spots[rng.integers(0, len(spots), 6000)], rng.integers(0, 1200, (300, 2))])[rng.permutation(6300)]
    keep = first_occurrences(points, 255)
    widths, heights = _capped_repeats(points[:, 0], points[:, 1])
    assert widths.tolist() == points[keep, 0].tolist() and heights.tolist() == points[keep, 1].tolist()
    assert (~keep).sum() > 4000

    def scatter(kept):
        figure = Figure(figsize=(4.5, 4), dpi=PLOT_DPI)
        figure.subplots().scatter(points[kept, 0], points[kept, 1], s=8, alpha=0.6, color="#C44E52")
        buffer = io.BytesIO()
        FigureCanvasAgg(figure).print_png(buffer)
        return pixels(buffer.getvalue())

    # What the cap relies on: markers past the 255th on one spot change no pixel (and 5 are too few).
    everything = scatter(np.ones(len(points), dtype=bool))
    assert (scatter(keep) == everything).all()
    assert (scatter(first_occurrences(points, 5)) != everything).any()
