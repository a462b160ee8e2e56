"""Seeded data generators in the real formats' shapes, for the README, the demo, the tests and the
benchmarks (as ``numpy.testing`` is for numpy's users).

Real corpora cannot be downloaded where the tests run; these write files of any size, in bounded
memory, with the quirks the loaders must keep. One module per family of formats:

- :mod:`hf_mmbuilder.testing.llava`: LLaVA records, JSON files and images;
- :mod:`hf_mmbuilder.testing.captions`: the audio/video caption formats (WavCaps, Video-ChatGPT,
  Youku-mPLUG, InternVid, MSR-VTT), and image folders with a captions JSON and a metadata CSV;
- :mod:`hf_mmbuilder.testing.interleaved`: MMC4, ShareGPT-style messages and Oasis, as JSON lines;
- :mod:`hf_mmbuilder.testing.corpus`: texts with planted near duplicates, for dedup.

Example:
    >>> from hf_mmbuilder import testing
    >>> sorted(testing.GENERATORS)
    ['mmc4', 'oasis', 'sharegpt']
    >>> len(list(testing.llava_records(3)))
    3
    >>> len(testing.planted_corpus(10))
    10
"""

from .captions import (
    WAVCAPS_SUBSETS,
    YOUKU_HEADERS,
    internvid_records,
    msrvtt_hf_records,
    msrvtt_official,
    video_chatgpt_records,
    wavcaps_records,
    write_internvid_jsonl,
    write_captioned_images,
    write_msrvtt,
    write_video_chatgpt_json,
    write_wavcaps_json,
    write_youku_csv,
    youku_rows,
)
from .corpus import planted_corpus
from .interleaved import GENERATORS, mmc4_records, oasis_records, sharegpt_records, write_jsonl
from .llava import llava_records, write_images, write_llava_json

__all__ = [
    "GENERATORS",
    "WAVCAPS_SUBSETS",
    "YOUKU_HEADERS",
    "internvid_records",
    "llava_records",
    "mmc4_records",
    "msrvtt_hf_records",
    "msrvtt_official",
    "oasis_records",
    "planted_corpus",
    "sharegpt_records",
    "video_chatgpt_records",
    "wavcaps_records",
    "write_captioned_images",
    "write_images",
    "write_internvid_jsonl",
    "write_jsonl",
    "write_llava_json",
    "write_msrvtt",
    "write_video_chatgpt_json",
    "write_wavcaps_json",
    "write_youku_csv",
    "youku_rows",
]
