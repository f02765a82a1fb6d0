"""A tune's files a musician can use: the ``.abc``, a ``.mid`` (music21), a piano-roll
``.png`` and a ``.wav`` rendered by FluidSynth with a General MIDI soundfont (Debian's
``fluidsynth`` and ``fluid-soundfont-gm``). A worker without FluidSynth writes the others
and says why there is no audio; a tune music21 cannot read gets only its ``.abc``."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from ....shared.kinds.melody.abc import Tune, without_repeats
from ....shared.kinds.melody.music import midi_bytes, note_events, parse

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
"""Where Debian's fluid-soundfont-gm puts its General MIDI soundfont."""
ABC_TYPE = "text/vnd.abc; charset=utf-8"
RENDER_SECONDS = 60  # FluidSynth renders a minute of music in well under a second
PIXELS_PER_QUARTER = 24
ROW_PIXELS = 6


@dataclass
class TuneFile:
    name: str
    data: bytes
    content_type: str
    text: str | None = None


@dataclass
class Rendered:
    files: list[TuneFile]
    notes: list[str] = field(default_factory=list)
    """Why a file is missing, for the job's log."""
    parsed: bool = True


def audio_missing() -> str | None:
    """Why this worker cannot render audio, or None when it can."""
    if shutil.which("fluidsynth") is None:
        return "fluidsynth is not installed on this worker (apt install fluidsynth)"
    if not SOUNDFONT.exists():
        return f"no soundfont at {SOUNDFONT} (apt install fluid-soundfont-gm)"
    return None


def render(tune: Tune, stem: str, audio: bool = True) -> Rendered:
    text = tune.text()
    result = Rendered([TuneFile(f"{stem}.abc", text.encode(), ABC_TYPE, text=text)])
    try:
        score = parse(tune)
        midi, score = _midi(tune, score, stem, result.notes)
    except Exception as exc:  # AbcError, or music21 failing on a machine-written tune
        result.notes.append(f"{stem}: only the .abc ({exc})")
        result.parsed = False
        return result
    result.files.append(TuneFile(f"{stem}.mid", midi, "audio/midi"))
    result.files.append(TuneFile(f"{stem}.png", piano_roll(note_events(score)), "image/png"))
    if audio:
        missing = audio_missing()
        if missing is None:
            result.files.append(TuneFile(f"{stem}.wav", wav_bytes(midi), "audio/wav"))
        else:
            result.notes.append(f"{stem}: no .wav: {missing}")
    return result


def _midi(tune: Tune, score: Any, stem: str, notes: list[str]) -> tuple[bytes, Any]:
    """The MIDI file, and the score it was written from."""
    try:
        return midi_bytes(score), score
    except Exception:  # music21 cannot expand badly formed repeats: play it straight
        notes.append(f"{stem}: its repeats are badly formed; the .mid plays it once")
        straight = parse(without_repeats(tune))
        return midi_bytes(straight), straight


def wav_bytes(midi: bytes) -> bytes:
    """MIDI → 16-bit 44.1 kHz WAV through the fluidsynth CLI (no audio device: -ni -F)."""
    with tempfile.TemporaryDirectory() as directory:
        source, target = Path(directory, "tune.mid"), Path(directory, "tune.wav")
        source.write_bytes(midi)
        options = ["-ni", "-q", "-g", "0.7", "-r", "44100", "-F", str(target)]
        subprocess.run(
            ["fluidsynth", *options, str(SOUNDFONT), str(source)],
            check=True,
            capture_output=True,
            timeout=RENDER_SECONDS,
        )
        return target.read_bytes()


def piano_roll(events: list[tuple[float, float, int]]) -> bytes:
    """Time left to right, pitch bottom to top, a bar of colour per note, as PNG."""
    if not events:
        events = [(0.0, 1.0, 60)]
    low = min(pitch for _, _, pitch in events) - 2
    high = max(pitch for _, _, pitch in events) + 2
    end = max(start + length for start, length, _ in events)
    width = min(int(end * PIXELS_PER_QUARTER) + 2, 4000)
    scale = (width - 2) / max(end, 1e-6)
    image = Image.new("RGB", (width, (high - low + 1) * ROW_PIXELS), (250, 248, 240))
    draw = ImageDraw.Draw(image)
    for pitch in range(low, high + 1):
        if pitch % 12 == 0:  # a C line, to read octaves by
            y = (high - pitch) * ROW_PIXELS + ROW_PIXELS // 2
            draw.line([(0, y), (width, y)], fill=(215, 210, 200))
    for start, length, pitch in events:
        x0 = 1 + int(start * scale)
        x1 = max(x0 + 1, int((start + length) * scale) - 1)
        y0 = (high - pitch) * ROW_PIXELS
        draw.rectangle([x0, y0, x1, y0 + ROW_PIXELS - 2], fill=(40, 90, 160))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
