"""Seeded generators for the audio/video caption formats (WavCaps, Video-ChatGPT, Youku-mPLUG,
InternVid, MSR-VTT) and for captioned image folders (the builder guide's layout), for the tests
and the benchmarks.

Each writes a file of any size in the real layout with every quirk the real data has (listed per
generator), so a lossless round trip is checked on far more than the few real records available.
"""

from __future__ import annotations

import csv
import random
import string

import orjson

_WORDS = (
    "a man woman dog is playing guitar on the street while people watch car drives down road "
    "kitchen cooking food rain wind bird sings loudly softly in background 一个 男人 在 弹 吉他 "
    "café Straße naïve 😀"
).split()
_ODD_TEXT = ["  padded  ", "tab\there", 'a "quoted" word', "back\\slash", "line\nbreak", "", "é\u2028x", "[[q]]: inside"]
_ID_CHARS = string.ascii_letters + string.digits + "-_"


def _sentence(rng: random.Random, low: int = 4, high: int = 14) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high)))
    if rng.random() < 0.02:
        text = rng.choice(_ODD_TEXT) + text + rng.choice(_ODD_TEXT)
    return text


def _youtube_id(rng: random.Random) -> str:
    return "".join(rng.choice(_ID_CHARS) for _ in range(11))


def _write_json(path: str, records, as_array: bool) -> str:
    with open(path, "wb") as handle:
        if as_array:
            handle.write(b"[")
        for number, record in enumerate(records):
            line = orjson.dumps(record)
            if as_array:
                handle.write((b"\n" if number == 0 else b",\n") + line)
            else:
                handle.write(line + b"\n")
        if as_array:
            handle.write(b"\n]\n")
    return path


def _timecode(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}.{int(round((seconds - whole) * 1000)) % 1000:03d}"


def video_chatgpt_records(count: int, seed: int = 0):
    """Yield ``count`` VideoInstruct-100K-shaped records.

    Quirks: several questions per video (about 7.5, as 100K over 13,303 videos), YouTube ids with
    ``_`` and ``-`` (so ``v_`` + id has several ``_``), non-ASCII, surrounding whitespace, quotes,
    newlines, a ``[[q]]:`` inside an answer, and an unknown key on one record in 500.

    Example:
        >>> sorted(next(video_chatgpt_records(1)))
        ['a', 'q', 'video_id']
    """
    rng = random.Random(seed)
    video = "v_" + _youtube_id(rng)
    for number in range(count):
        if rng.random() < 0.13:
            video = "v_" + _youtube_id(rng)
        record = {"q": _sentence(rng) + "?", "a": _sentence(rng, 10, 40) + ".", "video_id": video}
        if number % 500 == 7:
            record["source"] = rng.choice(["human", "semi-auto", 3])
        yield record


def write_video_chatgpt_json(path: str, count: int, seed: int = 0) -> str:
    """Write :func:`video_chatgpt_records` as one JSON array (the real layout); returns ``path``.

    Example:
        >>> write_video_chatgpt_json("/tmp/vc.json", 10)  # doctest: +SKIP
        '/tmp/vc.json'
    """
    return _write_json(path, video_chatgpt_records(count, seed), as_array=True)


YOUKU_HEADERS = {
    "pretrain": ["video_id:FILE", "title"],
    "classification": ["video_id:FILE", "title", "label"],
    "retrieval": ["clip_name:FILE", "caption"],
    "captioning": ["video_id:FILE", "golden_caption"],
}
_YOUKU_LABELS = ["宠物", "游戏", "美食", "汽车", "旅游,户外", 'say "hi"']


def youku_rows(subset: str, count: int, seed: int = 0):
    """Yield ``count`` Youku-mPLUG CSV rows (lists of cells, header not included) of ``subset``.

    Quirks: Chinese text, cells with commas, quotes and newlines (quoted in the CSV), surrounding
    spaces, empty captions, ``.mp4``/``.flv`` paths with ``-`` runs, ``golden_caption`` as a
    stringified Python list.

    Example:
        >>> len(next(youku_rows("classification", 1)))
        3
    """
    rng = random.Random(seed)
    folder = "videos/" + subset
    for _ in range(count):
        name = "".join(rng.choice("0123456789abcdefABCDEFJY-") for _ in range(rng.randint(40, 70)))
        video = f"{folder}/{name}{rng.choice(['.mp4', '.mp4', '.flv'])}"
        caption = _sentence(rng) if rng.random() > 0.01 else ""
        if subset == "captioning":
            caption = repr([_sentence(rng) for _ in range(rng.randint(1, 3))])
        row = [video, caption]
        if subset == "classification":
            row.append(rng.choice(_YOUKU_LABELS))
        yield row


def write_youku_csv(path: str, subset: str, count: int, seed: int = 0) -> str:
    """Write :func:`youku_rows` under the subset's header (UTF-8, minimal quoting); returns ``path``.

    Example:
        >>> write_youku_csv("/tmp/youku.csv", "retrieval", 10)  # doctest: +SKIP
        '/tmp/youku.csv'
    """
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(YOUKU_HEADERS[subset])
        writer.writerows(youku_rows(subset, count, seed))
    return path


def internvid_records(count: int, seed: int = 0):
    """Yield ``count`` InternVid-10M-FLT-shaped records.

    Quirks: YouTube ids with ``-``/``_``, several clips per video, ``HH:MM:SS.fff`` timestamps
    (clips past the hour too), float scores with an occasional integer-valued one written as an
    int (``5`` vs ``5.0``), non-ASCII and odd-whitespace captions, an unknown key one record in 500.

    Example:
        >>> sorted(next(internvid_records(1)))
        ['Aesthetic_Score', 'Caption', 'End_timestamp', 'Start_timestamp', 'UMT_Score', 'YoutubeID']
    """
    rng = random.Random(seed)
    video = _youtube_id(rng)
    for number in range(count):
        if rng.random() < 0.3:
            video = _youtube_id(rng)
        start = rng.uniform(0, 5400)
        record = {
            "YoutubeID": video,
            "Start_timestamp": _timecode(start),
            "End_timestamp": _timecode(start + rng.uniform(1, 30)),
            "Caption": _sentence(rng),
            "Aesthetic_Score": rng.choice([round(rng.uniform(3, 7), 8), 5, 4.0]),
            "UMT_Score": round(rng.random(), 10),
        }
        if number % 500 == 3:
            record["Lang"] = rng.choice(["en", "中文", None])
        yield record


def write_internvid_jsonl(path: str, count: int, seed: int = 0) -> str:
    """Write :func:`internvid_records` as JSON lines; returns ``path``.

    Example:
        >>> write_internvid_jsonl("/tmp/internvid.jsonl", 10)  # doctest: +SKIP
        '/tmp/internvid.jsonl'
    """
    return _write_json(path, internvid_records(count, seed), as_array=False)


def _msrvtt_video(rng: random.Random, number: int) -> dict:
    start = round(rng.uniform(0, 600), 2)
    return {
        "category": rng.randint(0, 19),
        "url": f"https://www.youtube.com/watch?v={_youtube_id(rng)}",
        "video_id": f"video{number}",
        "start time": start,
        "end time": round(start + rng.uniform(10, 30), 2),
        "split": rng.choice(["train", "train", "validate", "test"]),
        "id": number,
    }


def msrvtt_official(count: int, seed: int = 0) -> dict:
    """An official MSR-VTT annotation document with ``count`` sentences (20 per video, videos in
    a shuffled order, sentences in ``sen_id`` order across videos, as in the real file).

    Quirks: keys with spaces (``"start time"``), float times (some integral, written ``12.0``),
    an ``info`` block, one video in 50 with no sentence, non-ASCII and odd-whitespace captions.

    Example:
        >>> sorted(msrvtt_official(20))
        ['info', 'sentences', 'videos']
    """
    rng = random.Random(seed)
    video_count = max(1, count // 20)
    videos = [_msrvtt_video(rng, number) for number in range(video_count + video_count // 50)]
    for video in videos[::7]:
        video["start time"] = float(int(video["start time"]))
    described = videos[:video_count]
    rng.shuffle(videos)
    sentences = [
        {"caption": _sentence(rng), "video_id": rng.choice(described)["video_id"], "sen_id": number} for number in range(count)
    ]
    return {"info": {"contributor": "Microsoft MSM group", "year": "2016", "version": "1.0"}, "videos": videos, "sentences": sentences}


def msrvtt_hf_records(count: int, seed: int = 0):
    """Yield ``count`` records of the Hugging Face MSR-VTT layout (one caption per record, the
    video's fields beside it, pandas' ``__index_level_0__``), as Data-Juicer's converter reads.

    Example:
        >>> list(next(msrvtt_hf_records(1)))[:2]
        ['video_id', 'caption']
    """
    rng = random.Random(seed)
    for number in range(count):
        video = _msrvtt_video(rng, rng.randint(0, 9999))
        yield {"video_id": video.pop("video_id"), "caption": _sentence(rng), **video, "__index_level_0__": number}


def write_msrvtt(path: str, layout: str, count: int, seed: int = 0) -> str:
    """Write ``count`` MSR-VTT captions in ``layout``: ``"official"`` (JSON document),
    ``"jsonl"`` (Hugging Face layout) or ``"csv"`` (CLIP4Clip ``key,vid_key,video_id,sentence``);
    returns ``path``.

    Example:
        >>> write_msrvtt("/tmp/msrvtt.csv", "csv", 10)  # doctest: +SKIP
        '/tmp/msrvtt.csv'
    """
    if layout == "official":
        with open(path, "wb") as handle:
            handle.write(orjson.dumps(msrvtt_official(count, seed)))
        return path
    if layout == "jsonl":
        return _write_json(path, msrvtt_hf_records(count, seed), as_array=False)
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["key", "vid_key", "video_id", "sentence"])
        for number in range(count):
            video = rng.randint(7010, 9999)
            writer.writerow([f"ret{number}", f"msr{video}", f"video{video}", _sentence(rng)])
    return path


WAVCAPS_SUBSETS = ("soundbible", "freesound", "bbc_sound_effects", "audioset_sl", "retrieval")


def _duration(rng: random.Random):
    # About 10% of the real SoundBible durations are ints; some floats are integral (5.0).
    roll = rng.random()
    if roll < 0.1:
        return rng.randint(1, 120)
    if roll < 0.15:
        return float(rng.randint(1, 120))
    return round(rng.uniform(0.5, 300), rng.choice([2, 5, 8]))


def wavcaps_records(subset: str, count: int, seed: int = 0):
    """Yield ``count`` records of a WavCaps ``subset`` (one of :data:`WAVCAPS_SUBSETS`).

    Quirks: per-subset fields in the real order; int, integral-float and long-float durations;
    the ``"wav_path"`` placeholder; FreeSound ``tags`` lists and file names with spaces; BBC
    ``category`` as a stringified Python list and numeric-looking string ids with leading zeros;
    AudioSet ids ending in ``.wav``; retrieval records with ``caption_1..5`` and a ``wav`` path;
    non-ASCII and odd-whitespace captions.

    Example:
        >>> list(next(wavcaps_records("audioset_sl", 1)))
        ['id', 'caption', 'audio', 'duration']
    """
    rng = random.Random(seed)
    for number in range(count):
        caption = _sentence(rng)
        if subset == "soundbible":
            yield {
                "title": _sentence(rng, 2, 4).title(),
                "description": _sentence(rng),
                "author": rng.choice(["Daniel Simion", "Mike Koenig", "Ján"]),
                "href": f"{number}-{_sentence(rng, 1, 3).replace(' ', '-')}.html",
                "caption": caption,
                "id": str(number),
                "duration": _duration(rng),
                "audio": "wav_path",
                "download_link": f"http://soundbible.com/grab.php?id={number}&type=wav",
            }
        elif subset == "freesound":
            yield {
                "id": str(100000 + number),
                "file_name": _sentence(rng, 1, 3) + rng.choice([".wav", ".mp3", ".flac"]),
                "href": f"/people/u{number % 97}/sounds/{100000 + number}/",
                "tags": [rng.choice(_WORDS) for _ in range(rng.randint(0, 6))],
                "description": _sentence(rng),
                "author": f"user_{number % 97}",
                "duration": _duration(rng),
                "download_link": f"https://freesound.org/download/{100000 + number}.wav",
                "caption": caption,
                "audio": "wav_path",
            }
        elif subset == "bbc_sound_effects":
            yield {
                "description": _sentence(rng),
                "category": repr(rng.sample(["Nature", "Machines", "Animals", "Sport", "Vehicles"], rng.randint(1, 2))),
                "caption": caption,
                "id": f"{rng.randint(0, 99999999):08d}",
                "duration": _duration(rng),
                "audio": "wav_path",
                "download_link": f"https://sound-effects-media.bbcrewind.co.uk/zip/{number:08d}.wav.zip",
            }
        elif subset == "audioset_sl":
            yield {"id": "Y" + _youtube_id(rng) + ".wav", "caption": caption, "audio": "wav_path", "duration": _duration(rng)}
        else:
            name = _sentence(rng, 1, 3)
            yield {
                **{f"caption_{k}": _sentence(rng) for k in range(1, 6)},
                "wav": f"Clotho/waveforms/test/{name}.wav",
                "audio": f"/mnt/data/Clotho/waveforms/test/{name}.wav",
                "id": str(rng.randint(1000, 999999)),
                "duration": _duration(rng),
            }


def write_wavcaps_json(path: str, subset: str, count: int, seed: int = 0) -> str:
    """Write a WavCaps document of ``subset`` (the retrieval variant puts
    ``num_captions_per_audio`` after ``data``, as Clotho's file does); returns ``path``.

    Example:
        >>> write_wavcaps_json("/tmp/sb.json", "soundbible", 10)  # doctest: +SKIP
        '/tmp/sb.json'
    """
    with open(path, "wb") as handle:
        if subset != "retrieval":
            handle.write(b'{"num_captions_per_audio": 1, ')
        handle.write(b'{"data": [' if subset == "retrieval" else b'"data": [')
        for number, record in enumerate(wavcaps_records(subset, count, seed)):
            handle.write((b"" if number == 0 else b", ") + orjson.dumps(record))
        handle.write(b'], "num_captions_per_audio": 5}' if subset == "retrieval" else b"]}")
    return path


_COLORS = ("red", "blue", "green", "yellow", "orange", "purple", "white", "black", "brown", "grey")
_THINGS = ("ball", "cup", "chair", "kite", "boat", "lamp", "book", "apple", "bicycle", "umbrella")
_PLACES = ("kitchen", "garden", "beach", "office", "park", "street", "classroom", "forest")


def write_captioned_images(folder: str, count: int, seed: int = 0, size: tuple = (64, 48)) -> dict:
    """A guide-style data folder: ``images/NNNN.jpg`` (``count`` distinct JPEGs), ``captions.json``
    (a ``{file name: caption}`` object) and ``metadata.csv`` (``file_name``, ``colors``, ``location``),
    as :meth:`hf_mmbuilder.MultiModalDatasetBuilder.add_data_source` joins them. Returns the three paths.

    Example:
        >>> import tempfile
        >>> paths = write_captioned_images(tempfile.mkdtemp(), 3)
        >>> sorted(paths)
        ['images', 'metadata', 'texts']
    """
    import json
    import os

    from .llava import write_images

    rng = random.Random(seed)
    names = [f"{number:04d}.jpg" for number in range(count)]
    images = os.path.join(folder, "images")
    write_images(images, names, seed=seed, size=size)
    captions, rows = {}, []
    for name in names:
        first, second = rng.sample(_COLORS, 2)
        thing, place = rng.choice(_THINGS), rng.choice(_PLACES)
        captions[name] = f"A {first} {thing} stands next to a {second} wall in the {place}."
        rows.append({"file_name": name, "colors": f"{first} and {second}", "location": place})
    texts = os.path.join(folder, "captions.json")
    with open(texts, "w", encoding="utf-8") as handle:
        json.dump(captions, handle, indent=1)
    metadata = os.path.join(folder, "metadata.csv")
    with open(metadata, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file_name", "colors", "location"])
        writer.writeheader()
        writer.writerows(rows)
    return {"images": images, "texts": texts, "metadata": metadata}
