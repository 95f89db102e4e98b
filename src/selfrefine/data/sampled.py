"""Songs played on sampled recordings of real instruments: the sampled world (``generate.engine: sampled``).

The musical plans are the synthetic world's (:mod:`selfrefine.data.synth`: tempo, swing, key, chord progression,
drum pattern, bass line, arpeggiated or strummed chords, a sung melody in phrases), so the two worlds differ in
how the notes sound, not in what is played. Here the notes are played from a General MIDI soundfont (MuseScore
General, Debian's ``musescore-general-soundfont-small``, MIT) by TinySoundFont (``tinysoundfont`` on PyPI, MIT),
offline and sample-exact; nothing is downloaded.

Per song, a :class:`RenderPlan` picks each class's programs from its own sets, so a stem holds only its class:

* ``drums``: a GM drum kit (bank 128: standard, room, power, electronic, TR-808, jazz, brush).
* ``bass``: a GM bass (acoustic, fingered, picked, fretless, slap, pop, synth basses).
* ``other``: a chord part on keys, guitars, mallets or harp (the plan's arpeggio or strum), a part holding each
  chord on organ, strings, brass or a pad, or both, each on its own MIDI channel.
* ``vocals``: choir aahs, voice oohs, synth voice or solo vox singing the plan's melody, with vibrato and a scoop
  into each phrase (pitch bend).

The song is cut into sections of 2 or 4 bars, each with its own dynamics (a velocity scale shared by every part),
and a part's velocities follow the plan's accents. Each stem is rendered alone, down-mixed to mono, then panned
(stereo) and set to an RMS level in -24..-14 dBFS as in the synthetic world (:func:`selfrefine.data.synth.finish_stem`).
The same seed renders the same bytes: one synthesizer per process is reset before every stem.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfrefine import CLASSES
from selfrefine.data.synth import (
    MAX_PAN,
    STEPS_PER_BAR,
    Song,
    bass_notes,
    drum_hits,
    finish_stem,
    melody,
    plan_song,
    pluck_hits,
    song_samples,
)
from selfrefine.errors import UserError

logger = logging.getLogger(__name__)

SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
"""Where Debian's ``musescore-general-soundfont-small`` installs MuseScore General (``setup.sh`` installs it)."""

DRUM_BANK = 128
"""The soundfont bank of the GM drum kits."""

PROGRAMS: dict[str, dict[str, tuple[int, ...]]] = {
    "drums": {"kit": (0, 8, 16, 24, 25, 32, 40)},
    "bass": {"bass": (32, 33, 34, 35, 36, 37, 38, 39)},
    "other": {
        "chords": (0, 1, 2, 4, 5, 6, 7, 11, 12, 24, 25, 26, 27, 28, 29, 30, 46),
        "held": (16, 17, 18, 19, 48, 49, 50, 61, 62, 89, 90, 95),
    },
    "vocals": {"melody": (52, 53, 54, 85)},
}
"""Per class and part, the GM programs a part may be played on (drums: bank 128 kits, the rest bank 0). ``other``
leaves out every voice-like program (choirs, voice pads such as Space Voice and Halo Pad), which are ``vocals``'s."""

DRUM_KEYS = {"kick": 36, "snare": 38, "hat": 42, "open_hat": 46, "tom_hi": 48, "tom_lo": 43, "crash": 49}
"""The GM drum-map key of each sound of the plan's drum pattern."""

_BEND_RANGE = 2.0
"""Pitch-bend range in semitones (the GM default)."""

_BEND_EVERY = 0.01
"""Seconds between pitch-bend updates of the vibrato."""


@dataclass(frozen=True)
class Part:
    """One instrument of a stem: a GM program on its own MIDI channel."""

    name: str
    """The part within its class (:data:`PROGRAMS`)."""
    bank: int
    program: int
    channel: int


@dataclass(frozen=True)
class RenderPlan:
    """What one song's stems are played on, and how loud each section is."""

    parts: dict[str, tuple[Part, ...]]
    """Per class, its parts."""
    sections: tuple[tuple[int, float], ...]
    """``(first step, velocity scale)`` of each section, in order."""

    def scale(self, step: int) -> float:
        """The velocity scale of the section ``step`` lies in."""
        return next(s for first, s in reversed(self.sections) if step >= first)


def render_plan(rng: np.random.Generator, song: Song) -> RenderPlan:
    """Draw the programs of a song's parts and its sections' dynamics."""
    other = str(rng.choice(["chords", "held", "both"], p=[0.45, 0.25, 0.3]))
    names = {"drums": ["kit"], "bass": ["bass"], "other": ["chords", "held"] if other == "both" else [other]}
    names["vocals"] = ["melody"]
    parts = {}
    channel = 0
    for cls in CLASSES:
        chosen = []
        for name in names[cls]:
            program = int(rng.choice(PROGRAMS[cls][name]))
            chosen.append(Part(name, DRUM_BANK if cls == "drums" else 0, program, 9 if cls == "drums" else channel))
            channel += cls != "drums"
        parts[cls] = tuple(chosen)
    bars = int(rng.choice([2, 4]))
    sections = tuple(
        (first, float(rng.uniform(0.55, 1.0))) for first in range(0, max(song.n_steps, 1), bars * STEPS_PER_BAR)
    )
    return RenderPlan(parts, sections)


def _velocity(value: float, scale: float) -> int:
    """A MIDI velocity from a plan's 0..1 velocity and a section's scale."""
    return int(np.clip(round(127 * value * scale), 1, 127))


class _Events:
    """MIDI events of one stem, at sample positions: note ons and offs, pitch bends."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, str, tuple]] = []

    def note(self, channel: int, start: int, stop: int, key: int, velocity: int) -> None:
        self.items.append((start, 1, "noteon", (channel, int(key), velocity)))
        self.items.append((max(stop, start + 1), 0, "noteoff", (channel, int(key))))

    def bend(self, channel: int, at: int, semitones: float) -> None:
        value = int(np.clip(round(8192 + 8191 * semitones / _BEND_RANGE), 0, 16383))
        self.items.append((at, 0, "pitchbend", (channel, value)))


def _step(song: Song, sample: int) -> int:
    """The plan step a sample position falls in."""
    return int(sample / (song.step_seconds * song.sample_rate))


def _drum_events(rng: np.random.Generator, song: Song, plan: RenderPlan, part: Part) -> _Events:
    events = _Events()
    jitter = int(0.003 * song.sample_rate)
    for step, name, velocity in drum_hits(rng, song):
        start = song.sample_at(step) + int(rng.integers(-jitter, jitter + 1)) if step else 0
        length = int(0.2 * song.sample_rate)
        events.note(part.channel, start, start + length, DRUM_KEYS[name], _velocity(velocity, plan.scale(step)))
    return events


def _bass_events(rng: np.random.Generator, song: Song, plan: RenderPlan, part: Part) -> _Events:
    events = _Events()
    for note in bass_notes(rng, song):
        accent = 0.85 if _step(song, note.start) % 4 == 0 else 0.7
        velocity = _velocity(accent * rng.uniform(0.9, 1.1), plan.scale(_step(song, note.start)))
        events.note(part.channel, note.start, note.stop, int(note.midi), velocity)
    return events


def _other_events(rng: np.random.Generator, song: Song, plan: RenderPlan, parts: tuple[Part, ...]) -> _Events:
    events = _Events()
    sr = song.sample_rate
    center = int(rng.integers(55, 70))
    for part in parts:
        if part.name == "chords":
            ring = rng.uniform(0.25, 1.2) * sr
            shift = int(rng.choice([0, 12])) if len(parts) > 1 else 0
            for start, midi, velocity in pluck_hits(rng, song, center + shift):
                scale = plan.scale(_step(song, start))
                events.note(part.channel, start, start + int(ring), midi, _velocity(0.8 * velocity, scale))
        else:
            for step in range(0, song.n_steps, song.steps_per_chord):
                start, stop = song.sample_at(step), song.sample_at(step + song.steps_per_chord)
                velocity = _velocity(rng.uniform(0.55, 0.75), plan.scale(step))
                for midi in song.chord_midis(step, center):
                    events.note(part.channel, start, stop, midi, velocity)
    return events


def _vocal_events(rng: np.random.Generator, song: Song, plan: RenderPlan, part: Part) -> _Events:
    events = _Events()
    sr = song.sample_rate
    notes, _, phrase_starts = melody(rng, song, int(rng.integers(57, 70)), 1)
    depth, rate, delay = rng.uniform(0.15, 0.5), rng.uniform(5.0, 6.0), rng.uniform(0.1, 0.25)
    scoops = {notes[i].start for i in phrase_starts}
    for note in notes:
        velocity = _velocity(rng.uniform(0.7, 0.95), plan.scale(_step(song, note.start)))
        events.note(part.channel, note.start, note.stop, int(note.midi), velocity)
        below = rng.uniform(0.5, 1.5) if note.start in scoops else 0.0
        glide = rng.uniform(0.04, 0.1)
        every = max(1, int(_BEND_EVERY * sr))
        for at in range(note.start, note.stop, every):
            t = (at - note.start) / sr
            vibrato = depth * np.clip((t - delay) / 0.2, 0.0, 1.0) * np.sin(2 * np.pi * rate * t)
            events.bend(part.channel, at, vibrato - below * max(0.0, 1.0 - t / glide))
    return events


class Renderer:
    """One TinySoundFont synthesizer with the soundfont loaded (decoding it takes seconds), reset before each stem."""

    def __init__(self, soundfont: Path, sample_rate: int) -> None:
        import tinysoundfont

        if not soundfont.is_file():
            raise UserError(
                f"{soundfont}: no soundfont; the sampled world needs MuseScore General "
                "(`./setup.sh` installs it as root; or `apt-get install musescore-general-soundfont-small`), or set "
                "generate.soundfont to another General MIDI .sf2/.sf3"
            )
        self.sample_rate = sample_rate
        self.synth = tinysoundfont.Synth(samplerate=sample_rate, gain=0.0)
        self.sfid = self.synth.sfload(str(soundfont))

    def render(self, parts: tuple[Part, ...], events: _Events, n: int) -> np.ndarray:
        """The mono stem ``(n,)`` of ``parts`` playing ``events`` (sample-exact), from a silent, reset synthesizer."""
        synth = self.synth
        for part in parts:
            synth.program_select(part.channel, self.sfid, part.bank, part.program, is_drums=part.bank == DRUM_BANK)
            for controller, value in ((7, 100), (10, 64), (11, 127), (64, 0)):
                synth.control_change(part.channel, controller, value)
            synth.pitchbend_range(part.channel, _BEND_RANGE)
            synth.pitchbend(part.channel, 8192)
        out = np.zeros((n, 2), dtype=np.float32)
        position = 0
        for at, _, kind, args in sorted(events.items, key=lambda e: (e[0], e[1])):
            at = min(at, n)
            if at > position:
                out[position:at] = np.frombuffer(synth.generate(at - position), dtype=np.float32).reshape(-1, 2)
                position = at
            if at < n or kind == "noteoff":
                getattr(synth, kind)(*args)
        if position < n:
            out[position:] = np.frombuffer(synth.generate(n - position), dtype=np.float32).reshape(-1, 2)
        self._silence(parts)
        return out.mean(axis=1, dtype=np.float64)

    def _silence(self, parts: tuple[Part, ...]) -> None:
        """Stop every voice and render until the synthesizer is silent, so that the next stem starts from nothing."""
        for part in parts:
            self.synth.sounds_off(part.channel)
        for _ in range(100):
            tail = np.frombuffer(self.synth.generate(self.sample_rate // 10), dtype=np.float32)
            if not tail.any():
                return
        raise RuntimeError("the soundfont synthesizer does not fall silent after its voices are stopped")


_RENDERERS: dict[tuple[Path, int], Renderer] = {}


def renderer(soundfont: Path, sample_rate: int) -> Renderer:
    """This process's :class:`Renderer` of ``soundfont`` at ``sample_rate`` (loaded once)."""
    key = (Path(soundfont), sample_rate)
    if key not in _RENDERERS:
        _RENDERERS[key] = Renderer(*key)
    return _RENDERERS[key]


def sample_song(
    seed: int, seconds: float, sample_rate: int, channels: int, soundfont: Path = SOUNDFONT
) -> tuple[dict[str, np.ndarray], RenderPlan]:
    """Render the four stems of one random song from the soundfont.

    Args:
        seed: non-negative integer; the same seed (and soundfont) always gives the same bytes.
        seconds: song length.
        sample_rate: samples per second (at least 8000).
        channels: 1 (mono) or 2 (stereo, panned).
        soundfont: a General MIDI ``.sf2`` / ``.sf3``.

    Returns:
        ``({class: float32 array (channels, round(seconds * sample_rate))}, the song's render plan)``; every stem
        is finite, not silent and has ``|x| < 1``.

    Raises:
        ValueError: a negative seed, ``channels`` not 1 or 2, ``sample_rate < 8000`` or an empty song.
        selfrefine.errors.UserError: no soundfont at ``soundfont``.
    """
    n = song_samples(seconds, sample_rate, channels)
    plan_rng, parts_rng, *stem_rngs = np.random.default_rng(seed).spawn(2 + len(CLASSES))
    song = plan_song(plan_rng, n, sample_rate)
    plan = render_plan(parts_rng, song)
    synth = renderer(soundfont, sample_rate)
    stems = {}
    for cls, rng in zip(CLASSES, stem_rngs, strict=True):
        parts = plan.parts[cls]
        if cls == "drums":
            events = _drum_events(rng, song, plan, parts[0])
        elif cls == "bass":
            events = _bass_events(rng, song, plan, parts[0])
        elif cls == "other":
            events = _other_events(rng, song, plan, parts)
        else:
            events = _vocal_events(rng, song, plan, parts[0])
        mono = synth.render(parts, events, n)
        if not np.abs(mono).max() > 0:
            raise RuntimeError(f"song seed {seed}: {cls} rendered silent on programs {parts}")
        stems[cls] = finish_stem(rng, mono, channels, sample_rate, MAX_PAN[cls])
    return stems, plan
