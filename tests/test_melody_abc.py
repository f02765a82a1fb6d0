"""ABC tunes as the ``melody`` kind reads them: normalisation, tokens, music21's checks,
the ``folk`` build's drop counts, and ``.abc`` uploads (good, broken and hostile).

Fast tier: music21 and the in-process API; no TensorFlow."""

from __future__ import annotations

import io
import math
import zipfile

import pytest

from atelier.shared.kinds.melody.abc import AbcError, normalise, split_tunes, tune_from_tokens
from atelier.shared.kinds.melody.music import stats
from atelier.workers.kinds.melody.folk import build, source_files
from tests.conftest import InProcessApi

MESSY = """X: 7
T: The Test Reel
% a comment line
R: Reel
L: 1/8
M: C|
K: D major
"D"d2 (fe) ~d2 AF | !trill!G2 B>c d2 {e}dB | A2 (3FGA d2 fd | e2 =c2 [df]2 d2 :|
w: la la la la
|: a2 fa g2 eg | f2 d'f e2 ce |1 d4 z4 :|2 d8 |]
"""


def test_normalising_sorts_the_header_and_keeps_only_the_melody() -> None:
    tune = normalise(MESSY)
    assert tune.header_tokens() == ["M:2/2", "L:1/8", "R:reel", "K:D"]
    text = tune.text()
    assert text.splitlines()[:6] == ["X:1", "T:The Test Reel", "M:2/2", "L:1/8", "R:reel", "K:D"]
    for gone in ('"D"', "~", "!trill!", "{e}", "w:", "%", "("):
        assert gone not in text.replace("(3", ""), gone
    for kept in ("(3", "[", "=c", "|:", ":|", "[1", "[2", "|]", "d'", ">", "z4"):
        assert kept in tune.body or kept in text, kept
    assert "(3" in tune.body and "[1" in tune.body and "|:" in tune.body


def test_every_tune_counts_in_eighths() -> None:
    """L:1/16 and L:1/4 sources become L:1/8; a chord's own length scales its notes."""
    sixteenths = normalise("X:1\nM:2/4\nL:1/16\nK:D\nA2Bc d4 [df]2 [d2f2]|z8|]")
    assert sixteenths.body[:11] == ["A", "B", "/2", "c", "/2", "d", "2", "[", "d", "f", "]"]
    assert sixteenths.body[11:] == ["[", "d", "2", "f", "2", "]", "/2", "|", "z", "4", "|]"]
    quarters = normalise("X:1\nM:4/4\nL:1/4\nK:D\nA/2B/2 c3|z4|]")
    assert quarters.body == ["A", "B", "c", "6", "|", "z", "8", "|]"]
    assert quarters.header_tokens() == ["M:4/4", "L:1/8", "K:D"]


def test_tokens_survive_a_round_trip_through_text() -> None:
    path = source_files("oneills1850")[0]
    checked = 0
    for source in split_tunes(path.read_text(encoding="utf-8"))[:40]:
        try:
            tune = normalise(source)
        except AbcError:
            continue
        again = normalise(tune.text())
        assert again.tokens() == tune.tokens()
        assert tune_from_tokens(tune.tokens(), tune.title).text() == tune.text()
        checked += 1
    assert checked >= 30, f"only {checked} of the first 40 tunes normalise"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("X:1\nM:none\nL:1/8\nK:D\nabc|def|", "meter"),
        ("X:1\nM:4/4\nL:1/8\nK:D\nabcd|[K:G]efga|", "unreadable"),
        ("X:1\nM:4/4\nL:1/8\nK:D\nabcd|\nK:G\nefga|", "mid-tune K:"),
        ("X:1\nM:4/4\nL:1/8\nabcd|efga|", "no K:"),
        ("X:1\nM:4/4\nL:1/8\nK:D\nabcd", "fewer than two bar lines"),
    ],
)
def test_tunes_we_cannot_read_are_refused_with_a_reason(source: str, reason: str) -> None:
    with pytest.raises(AbcError, match=reason):
        normalise(source)


def test_music21_counts_bars_and_the_ones_that_fill_the_meter() -> None:
    figures = stats(normalise("X:1\nM:3/4\nL:1/8\nK:G\nD2|G2B2d2|g4f2|e2d2|c2B2A2|G6|]"))
    assert figures.bars == 6 and figures.inner_bars == 4
    assert figures.full_bars == 3  # g4f2 is 3/4, e2d2 is short
    assert sum(figures.pitch_classes) == 12 and figures.pitch_classes[7] >= 3  # G


def test_the_folk_build_keeps_readable_tunes_and_counts_the_rest() -> None:
    corpus = build(("oneills1850", "essenFolksong"), per_file=2)
    assert len(corpus.tunes) >= 120
    assert sum(corpus.dropped.values()) >= 1  # Essen's free-meter songs
    assert corpus.bar_share() > 0.8
    assert all(t.text.startswith("X:") for t in corpus.tunes)


def _upload(api: InProcessApi, filename: str, data: bytes) -> tuple[int, dict[str, object]]:
    response = api.http.post(
        api.url("/v1/datasets"),
        headers={"Authorization": f"Bearer {api.raw_key('abby')}"},
        files={"file": (filename, data)},
        timeout=120,
    )
    return response.status_code, response.json()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


GOOD = "X:1\nM:6/8\nL:1/8\nR:jig\nK:D\nA|dfa agf|e2d cBA|dfa agf|e3 d2:|\n"


def test_abc_uploads_keep_the_readable_tunes(inprocess_api: InProcessApi) -> None:
    broken = "X:2\nM:none\nK:D\nabc|abc|\n"
    status, body = _upload(inprocess_api, "tunes.abc", (GOOD + "\n" + broken + GOOD).encode())
    assert status == 201, body
    assert body["modality"] == "music" and body["count"] == 2
    status, body = _upload(inprocess_api, "set.zip", _zip({"a/one.abc": GOOD.encode()}))
    assert status == 201, body
    assert body["count"] == 1


@pytest.mark.parametrize(
    ("filename", "data", "status"),
    [
        ("latin1.abc", GOOD.replace("jig", "jïg").encode("latin-1"), 422),
        ("nul.abc", GOOD.encode() + b"\x00", 422),
        ("none.abc", b"X:1\nM:none\nK:D\nabc|abc|\n", 422),
        ("escape.zip", _zip({"../../etc/tune.abc": GOOD.encode()}), 422),
        ("many.abc", (GOOD * 2001).encode(), 413),
    ],
)
def test_hostile_abc_uploads_are_refused(
    inprocess_api: InProcessApi, filename: str, data: bytes, status: int
) -> None:
    got, body = _upload(inprocess_api, filename, data)
    assert got == status, body
    assert str(body["type"]).startswith("urn:atelier:problem:")


def test_a_tune_becomes_abc_midi_a_piano_roll_and_audio() -> None:
    from atelier.workers.kinds.melody.render import audio_missing, render

    rendered = render(normalise(GOOD), "tune-0")
    types = {f.name: f.content_type for f in rendered.files}
    assert types["tune-0.abc"].startswith("text/vnd.abc")
    assert types["tune-0.mid"] == "audio/midi" and types["tune-0.png"] == "image/png"
    files = {f.name: f.data for f in rendered.files}
    assert files["tune-0.mid"][:4] == b"MThd" and files["tune-0.png"][:4] == b"\x89PNG"
    if audio_missing() is None:  # .ci/run installs fluidsynth and the soundfont
        assert files["tune-0.wav"][:4] == b"RIFF" and len(files["tune-0.wav"]) > 44_100
    else:
        assert "tune-0.wav" not in files and rendered.notes


def test_the_api_documents_validates_and_admits_melody_jobs(inprocess_api: InProcessApi) -> None:
    document = inprocess_api.http.get(inprocess_api.url("/v1/openapi.json"), timeout=10).json()
    schemas = document["components"]["schemas"]
    generate = schemas["melody_generate_params"]["properties"]
    assert {"n", "seed", "temperature", "top_k", "top_p", "meter", "key", "rhythm"} <= set(generate)
    client = inprocess_api.client("gwen")
    job = client.submit("train", "melody", {})
    assert job["params"]["dataset"] == "folk" and job["params"]["steps"] == 1200
    headers = {"Authorization": f"Bearer {inprocess_api.raw_key('gwen')}"}
    for params, field in (
        ({"model_id": "model_x", "rhythm": "foxtrot"}, "params.rhythm"),
        ({"model_id": "model_x", "key": "H"}, "params.key"),
        ({"model_id": "model_x", "meter": "6/7"}, "params.meter"),
    ):
        answer = inprocess_api.http.post(
            inprocess_api.url("/v1/jobs"),
            headers=headers,
            json={"type": "generate", "kind": "melody", "params": params},
            timeout=10,
        )
        assert answer.status_code == 422, answer.text
        assert field in answer.text
    huge = {"num_layers": 24, "hidden_dim": 2048, "sequence_length": 2048, "batch_size": 512}
    answer = inprocess_api.http.post(
        inprocess_api.url("/v1/jobs"),
        headers=headers,
        json={"type": "train", "kind": "melody", "params": huge},
        timeout=10,
    )
    assert answer.status_code == 422 and "too-large" in answer.json()["type"], answer.text


def test_the_ngram_baseline_is_a_distribution_and_learns() -> None:
    from bench.melody_quality import TokenNgram

    tunes = [[1, 3, 4, 5, 3, 4, 5, 2], [1, 3, 4, 5, 6, 2]]
    ngram = TokenNgram(tunes, 3, vocabulary=8)
    for history in ([1], [1, 3], [1, 3, 4], [7, 7]):
        assert abs(float(ngram.distribution(history).sum()) - 1) < 1e-9
    assert ngram.distribution([3, 4])[5] > 0.5
    loss, tokens = ngram.cross_entropy(tunes, 100)
    assert tokens == 12 and loss < math.log(8)


def test_badly_formed_repeats_still_make_a_midi_file() -> None:
    from atelier.workers.kinds.melody.render import render

    tune = normalise("X:1\nM:4/4\nL:1/8\nK:D\n|:abcd efga|[2 abcd efga:|[1 abc:| d8|]")
    rendered = render(tune, "t", audio=False)
    assert [f.name for f in rendered.files] == ["t.abc", "t.mid", "t.png"]
    assert "plays it once" in rendered.notes[0]


def test_candidates_are_ranked_by_whole_bars_and_length() -> None:
    from atelier.shared.kinds.melody.abc import meter_fit

    full = normalise("X:1\nM:2/4\nL:1/8\nK:G\nD|" + "GABc|" * 8 + "G3|]")
    ragged = normalise("X:1\nM:2/4\nL:1/8\nK:G\nD|" + "GABc|GAB|" * 4 + "G3|]")
    short = normalise("X:1\nM:2/4\nL:1/8\nK:G\nD|GABc|BcBG|F3|]")
    assert meter_fit(full) == 1.0 and meter_fit(ragged) == 0.5
    assert meter_fit(short) < meter_fit(ragged)


def test_transposing_moves_every_note_by_the_same_interval() -> None:
    from atelier.shared.kinds.melody.music import parse
    from atelier.shared.kinds.melody.transpose import transpose

    tune = normalise("X:1\nM:6/8\nL:1/8\nK:Ador\nA,B=c ^cde|^f_ga b^c'a|e,^^FG A3|]")
    for tonic, interval in (("D", 5), ("G", -2), ("Bb", 1), ("F#", -3)):
        moved = transpose(tune, tonic)
        assert moved.key == f"{tonic}dor"
        before = [p.midi for n in parse(tune).parts[0].recurse().notes for p in n.pitches]
        after = [p.midi for n in parse(moved).parts[0].recurse().notes for p in n.pitches]
        assert [b - a for a, b in zip(before, after, strict=True)] == [interval] * len(before)
