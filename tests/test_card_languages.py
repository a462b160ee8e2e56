"""The card's language detection: the compiled walk gives py3langid's own label for every text.

``text_languages`` / ``detect_languages`` read py3langid 0.4.0's model and text preparation and
redo its walk and arithmetic (``hf_mmbuilder.kernels.language_id``); these tests pin them to
``py3langid.classify`` text by text on a varied corpus (scripts, case, normalisation, DJ tokens,
lengths, featureless and alias-label texts), and the walk to py3langid's ``visit_counts``.
"""

import random
import unicodedata
from collections import Counter

import numpy as np
import py3langid
import pytest
from py3langid import langid

from hf_mmbuilder.kernels.language_id import feature_counts, naive_bayes_scores
from hf_mmbuilder.publishing.card import detect_languages, text_languages
from hf_mmbuilder.schema import DEFAULT_TOKENS, SpecialTokens

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Le renard brun rapide saute par-dessus le chien paresseux près de la rivière.",
    "Der schnelle braune Fuchs springt über den faulen Hund am Flussufer.",
    "El rápido zorro marrón salta sobre el perro perezoso junto al río.",
    "La volpe marrone veloce salta sopra il cane pigro vicino al fiume.",
    "A rápida raposa marrom pula sobre o cão preguiçoso perto do rio.",
    "De snelle bruine vos springt over de luie hond bij de rivier.",
    "Быстрая коричневая лиса прыгает через ленивую собаку у реки.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο δίπλα στο ποτάμι.",
    "الثعلب البني السريع يقفز فوق الكلب الكسول بالقرب من النهر.",
    "השועל החום המהיר קופץ מעל הכלב העצלן ליד הנהר.",
    "तेज़ भूरी लोमड़ी नदी के पास आलसी कुत्ते के ऊपर कूदती है।",
    "สุนัขจิ้งจอกสีน้ำตาลกระโดดข้ามสุนัขขี้เกียจใกล้แม่น้ำ",
    "敏捷的棕色狐狸跳过了河边那只懒惰的狗。",
    "素早い茶色の狐が川のそばで怠け者の犬を飛び越える。",
    "빠른 갈색 여우가 강가에서 게으른 개를 뛰어넘는다.",
    "Hızlı kahverengi tilki nehir kenarındaki tembel köpeğin üzerinden atlar.",
    "Szybki brązowy lis przeskakuje nad leniwym psem przy rzece.",
    "Den snabba bruna räven hoppar över den lata hunden vid floden.",
    "Nopea ruskea kettu hyppää laiskan koiran yli joen rannalla.",
    "Con cáo nâu nhanh nhẹn nhảy qua con chó lười biếng gần bờ sông.",
    "روباه قهوه‌ای سریع از روی سگ تنبل کنار رودخانه می‌پرد.",
    "Швидка коричнева лисиця стрибає через ледачого собаку біля річки.",
    "Брза смеђа лисица скаче преко лењог пса поред реке.",
    "Brza smeđa lisica skače preko lenjog psa pored reke.",
    "Tez jigarrang tulki daryo yonidagi dangasa it ustidan sakraydi.",
    "Тез жигарранг тулки дарё ёнидаги дангаса ит устидан сакрайди.",
    "Rychlá hnědá liška skáče přes líného psa u řeky.",
    "A gyors barna róka átugrik a lusta kutya felett a folyó mellett.",
    "Ang mabilis na kayumangging soro ay tumalon sa tamad na aso malapit sa ilog.",
    "Mbweha mwepesi wa kahawia anaruka juu ya mbwa mvivu karibu na mto.",
    "দ্রুত বাদামী শিয়াল নদীর কাছে অলস কুকুরের উপর দিয়ে লাফ দেয়।",
    "விரைவான பழுப்பு நரி ஆற்றின் அருகே சோம்பேறி நாயின் மேல் குதிக்கிறது.",
    "სწრაფი ყავისფერი მელა ხტება ზარმაც ძაღლზე მდინარესთან.",
    "Արագ շագանակագույն աղվեսը ցատկում է ծույլ շան վրայով գետի մոտ։",
]


def _classify(text: str, tokens: SpecialTokens = DEFAULT_TOKENS):
    """What detect_languages counted per text before the compiled walk: py3langid, text by text."""
    for token in (tokens.image, tokens.audio, tokens.video, tokens.eoc):
        text = text.replace(token, " ")
    return py3langid.classify(text)[0] if text.strip() else None


def _corpus() -> list[str]:
    rng = random.Random(22)
    texts = list(SENTENCES)
    texts += [sentence.upper() for sentence in SENTENCES]  # all upper case: py3langid lower-cases
    texts += [unicodedata.normalize("NFD", sentence) for sentence in SENTENCES]  # composed to NFC first
    texts += [f"<__dj__image>\n{sentence} <|__dj__eoc|>" for sentence in SENTENCES[::3]]
    texts += ["<__dj__video><__dj__audio> " + SENTENCES[1][:12], "<__dj__image>", "  <|__dj__eoc|>\n"]
    texts += ["a", "é", "?", "Ok", "OK!", "ß", "İ", "中", "ё", "ab" * 3]
    # Featureless (no n-gram of the model): py3langid's floor scores, the first class.
    texts += ["\x01\x02\x03", "😀", "😀😀😀", "§", "\ufeff", "☃"]
    texts += ["\ud800 lone surrogate", "😀😁", "\U000e0001"]
    texts += ["", " ", "\n\t"]
    texts.append(" ".join(SENTENCES) * 40)  # ~100 kB
    texts.append(SENTENCES[0] * 300)  # one feature counted thousands of times
    # Random mixtures of scripts and sentence pieces: labels decided by close scores.
    alphabet = "".join(SENTENCES) + "0123456789 .,;:!?'\"()-\n"
    for _ in range(300):
        length = rng.choice([1, 2, 3, 5, 8, 20, 60, 200, 1000])
        texts.append("".join(rng.choice(alphabet) for _ in range(length)))
    for _ in range(100):
        pieces = rng.sample(SENTENCES, 3)
        texts.append(" ".join(piece[rng.randrange(len(piece)):] for piece in pieces))
    return texts


CORPUS = _corpus()


def test_every_text_gets_py3langids_label():
    expected = [_classify(text) for text in CORPUS]
    assert text_languages(CORPUS) == expected
    # The corpus reaches many labels, both columns of the aliased ones, and the featureless floor.
    assert len(set(expected)) >= 30
    assert {"sr", "uz", "af", None} <= set(expected)


def test_counts_are_py3langids_counts():
    expected = Counter(label for label in map(_classify, CORPUS) if label is not None)
    assert detect_languages(CORPUS) == expected
    assert list(detect_languages(CORPUS)) == list(expected)  # first-seen order, as the card lists ties
    assert detect_languages([]) == Counter()
    assert detect_languages(["", " <__dj__image> ", "\n"]) == Counter()


def test_a_text_alone_gets_the_label_it_gets_among_others():
    for text in CORPUS[::7]:
        assert text_languages([text]) == [_classify(text)]
    assert text_languages(CORPUS[::-1]) == text_languages(CORPUS)[::-1]


def test_custom_tokens_are_left_out():
    tokens = SpecialTokens(image="<img>", audio="<aud>", video="<vid>", eoc="<end>")
    texts = [f"<img>{sentence}<end>" for sentence in SENTENCES] + ["<img><aud>", "<__dj__image>"]
    assert text_languages(texts, tokens) == [_classify(text, tokens) for text in texts]
    # Only the given tokens are left out: the default image token is text like any other.
    assert text_languages(texts, tokens)[-2] is None
    assert text_languages(texts, tokens)[-1] == _classify("<__dj__image>", tokens) is not None


def _walked(texts):
    py3langid.classify("load")
    identifier = langid._get_identifier()
    model = (np.frombuffer(identifier.tk_nextmove, dtype=f"u{identifier.tk_nextmove.itemsize}"),
             np.frombuffer(identifier.tk_row, dtype=f"u{identifier.tk_row.itemsize}"),
             np.asarray(identifier.tk_output, dtype=np.int32))
    encoded = [identifier._encode(text) for text in texts]
    offsets = np.concatenate([[0], np.cumsum([len(data) for data in encoded])]).astype(np.int64)
    return identifier, encoded, feature_counts(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets, *model)


def test_walk_gives_py3langids_feature_counts_in_first_seen_order():
    identifier, encoded, (starts, local, counts, distinct) = _walked(CORPUS)
    assert len(set(distinct.tolist())) == len(distinct)
    for text, data in enumerate(encoded):
        visits = langid.visit_counts(identifier.tk_nextmove, identifier._rowbase, identifier.tk_output, data) or {}
        found = slice(starts[text], starts[text + 1])
        assert list(zip(distinct[local[found]].tolist(), counts[found].tolist())) == list(visits.items())


def test_scores_are_py3langids_bit_for_bit():
    # Bit for bit, not close: a near tie between two languages must fall the same way.
    identifier, encoded, (starts, local, counts, distinct) = _walked(CORPUS)
    scores = naive_bayes_scores(starts, local, counts, identifier.nb_ptc[distinct].astype(np.float32), identifier.nb_pc,
                                np.array(identifier._alias_pairs).reshape(-1, 2), langid.RAW_FLOOR)
    expected = np.stack([identifier._decide(data) for data in encoded])
    assert scores.dtype == expected.dtype == np.float32
    assert scores.tobytes() == expected.tobytes()


def test_the_pinned_py3langid():
    # The walk reads py3langid's private model layout: a new version must be checked against it.
    assert py3langid.__version__ == "0.4.0"


@pytest.fixture
def model_cache(tmp_path, monkeypatch):
    """The datasets cache (where the decompressed model is kept) in a fresh folder, the model loaded anew."""
    from datasets import config

    from hf_mmbuilder.publishing import card

    monkeypatch.setattr(config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    card._language_model.cache_clear()
    yield tmp_path / "cache"
    card._language_model.cache_clear()


def test_the_decompressed_model_is_kept_and_mapped(model_cache):
    from hf_mmbuilder.publishing import card

    expected = [_classify(text) for text in CORPUS]
    assert text_languages(CORPUS) == expected  # decompressed, then kept
    [folder] = (model_cache / "hf_mmbuilder").iterdir()
    assert folder.name.startswith("py3langid-") and sorted(path.name for path in folder.iterdir()) == [
        "classes.npy", "nextmove.npy", "nextmove_row.npy", "out_feat.npy", "pc.npy", "ptc.npy"]
    card._language_model.cache_clear()
    model = card._language_model()
    assert isinstance(model.nextmove, np.memmap) and isinstance(model.feature_scores, np.memmap)
    assert text_languages(CORPUS) == expected


def test_an_unwritable_cache_still_gives_the_labels(model_cache):
    model_cache.parent.mkdir(exist_ok=True)
    model_cache.write_text("a file where the cache folder would be")
    assert text_languages(CORPUS) == [_classify(text) for text in CORPUS]
    assert model_cache.read_text() == "a file where the cache folder would be"
