"""Synthetic multitrack songs with the four MUSDB classes: the project's default, generated dataset.

Every song gets a tempo, a key (major or natural minor) and a chord progression; the four stems are then
rendered from that shared plan so that they fit together musically:

* ``drums``: kick (sine with a falling pitch envelope), snare (tone plus band-passed noise), closed and
  open hats (high-passed noise bursts), toms and a crash for fills, on a per-song pattern with ghost notes,
  fills, swing and velocity jitter.
* ``bass``: a monophonic line on the chord roots (fundamentals around 40-110 Hz, fifths and octaves now
  and then) with a saw/square/sine-ish harmonic mix, ADSR note envelopes and a low-pass filter.
* ``other``: arpeggios or strummed chords on plucked strings (decaying harmonics) and/or a pad of detuned
  band-limited saws with a slow attack, in the mid range.
* ``vocals``: a sung line on the key's scale in phrases with rests, portamento glides, vibrato (5-6 Hz),
  vowel formant filters that change from note to note, and breath noise.

Timbre parameters (harmonic weights, filter cutoffs, decays, detune, register) are drawn per song, so
the classes are learnable but overlap in range. Each stem gets a random pan/width (stereo) and a random
RMS level in -24..-14 dBFS (lowered only where the peak would reach 1).

Arrays are ``float64`` of shape ``(samples,)`` inside this module and ``float32`` of shape
``(channels, samples)`` on the way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import signal

from selfrefine import CLASSES

STEPS_PER_BAR = 16
"""The rhythmic grid: sixteenth notes in 4/4."""

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
"""Semitone offsets from the tonic of the seven degrees of the major and natural-minor scales."""
_PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 0), (5, 3, 0, 4), (0, 3, 5, 4), (0, 5, 1, 4), (0, 2, 3, 4))
"""Chord-root scale degrees (0 = tonic) of common four-chord progressions."""

_KICK_PATTERNS = ((0, 4, 8, 12), (0, 8, 10), (0, 6, 8), (0, 3, 8, 11), (0, 7, 10), (0, 10), (0, 6, 10))
"""Kick onsets within a bar, in sixteenth steps."""

_STRUM_PATTERNS = ((0, 4, 8, 12), (0, 6, 8, 14), (0, 3, 6, 8, 11, 14), (0, 8), (0, 6, 12))
"""Chord-strum onsets within a bar, in sixteenth steps."""

_VOWELS = np.array([[800, 1200, 2500], [450, 1900, 2550], [300, 2250, 2950], [500, 900, 2400], [330, 800, 2300]])
"""Formant centre frequencies F1..F3 in Hz of the vowels a, e, i, o, u; shape (5, 3)."""

MAX_PAN = {"bass": 0.15, "drums": 0.25, "other": 0.8, "vocals": 0.3}
"""Largest pan position per class (-1 = left, 1 = right)."""

_LEVEL_DB = (-24.0, -14.0)
"""Range of each stem's per-song RMS level in dBFS."""

_PEAK = 0.98
"""Largest absolute sample value a stem may reach."""


class Note(NamedTuple):
    """One note: sounding from ``start`` to ``stop`` (sample indices) at MIDI pitch ``midi``."""

    start: int
    stop: int
    midi: float


@dataclass(frozen=True)
class Song:
    """The musical plan shared by the four stems of one song.

    Attributes:
        sample_rate: samples per second.
        n_samples: length of every stem.
        step_seconds: duration of one sixteenth-note step.
        swing: delay of the off-beat sixteenths, as a fraction of a step.
        tonic: pitch class of the key (0 = C).
        scale: semitone offsets of the seven scale degrees from the tonic.
        chords: scale degree of each chord root of the progression, cycled through the song.
        steps_per_chord: how many steps each chord lasts.
        seventh: whether chords are played with their seventh.
    """

    sample_rate: int
    n_samples: int
    step_seconds: float
    swing: float
    tonic: int
    scale: tuple[int, ...]
    chords: tuple[int, ...]
    steps_per_chord: int
    seventh: bool

    @property
    def n_steps(self) -> int:
        """Number of steps covering the song (ignoring swing)."""
        return int(np.ceil(self.n_samples / (self.sample_rate * self.step_seconds)))

    def sample_at(self, step: int) -> int:
        """Sample index where ``step`` starts (off-beat sixteenths are delayed by the swing)."""
        return round((step + self.swing * (step % 2)) * self.step_seconds * self.sample_rate)

    def chord_root(self, step: int) -> int:
        """Scale degree of the chord root sounding at ``step``."""
        return self.chords[(step // self.steps_per_chord) % len(self.chords)]

    def semitones(self, degree: int) -> int:
        """Semitones from the tonic to scale ``degree`` (any integer; 7 is the tonic an octave up)."""
        return 12 * (degree // 7) + self.scale[degree % 7]

    def chord_midis(self, step: int, center: int) -> list[int]:
        """MIDI pitches of the chord at ``step``, each placed within a tritone of ``center``, ascending."""
        root = self.chord_root(step)
        degrees = (root, root + 2, root + 4, root + 6) if self.seventh else (root, root + 2, root + 4)
        return sorted(nearest_midi(self.tonic + self.semitones(d), center) for d in degrees)


def song_samples(seconds: float, sample_rate: int, channels: int) -> int:
    """The length in samples of a song of ``seconds``, checking the arguments every world takes.

    Raises:
        ValueError: ``channels`` not 1 or 2, ``sample_rate < 8000`` or an empty song.
    """
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    if sample_rate < 8000:
        raise ValueError(f"sample_rate must be at least 8000 Hz, got {sample_rate}")
    n_samples = int(round(seconds * sample_rate))
    if n_samples < 1:
        raise ValueError(f"a song of {seconds} s at {sample_rate} Hz has no samples")
    return n_samples


def synthesize_song(seed: int, seconds: float, sample_rate: int, channels: int) -> dict[str, np.ndarray]:
    """Synthesise the four stems of one random song.

    Args:
        seed: non-negative integer; the same seed always gives the same song.
        seconds: song length.
        sample_rate: samples per second (at least 8000).
        channels: 1 (mono) or 2 (stereo).

    Returns:
        ``{class: float32 array (channels, round(seconds * sample_rate))}`` for the four
        :data:`selfrefine.CLASSES`, in that order; every stem is finite, not silent and has ``|x| < 1``.

    Raises:
        ValueError: a negative seed, ``channels`` not 1 or 2, ``sample_rate < 8000`` or an empty song.
    """
    n_samples = song_samples(seconds, sample_rate, channels)
    plan_rng, *stem_rngs = np.random.default_rng(seed).spawn(1 + len(CLASSES))
    song = plan_song(plan_rng, n_samples, sample_rate)
    renderers = {"bass": _render_bass, "drums": _render_drums, "other": _render_other, "vocals": _render_vocals}
    stems = {}
    for name, rng in zip(CLASSES, stem_rngs):
        stems[name] = finish_stem(rng, renderers[name](rng, song), channels, sample_rate, MAX_PAN[name])
    return stems


# --- song plan and shared helpers -------------------------------------------------------------------


def plan_song(rng: np.random.Generator, n_samples: int, sample_rate: int) -> Song:
    """Draw tempo, swing, key, progression and harmonic rhythm of a song of ``n_samples`` samples."""
    bpm = rng.uniform(75.0, 160.0)
    if bpm < 95:
        steps_per_chord = int(rng.choice([8, 16]))
    elif bpm > 130:
        steps_per_chord = int(rng.choice([16, 32]))
    else:
        steps_per_chord = int(rng.choice([16, 16, 32]))
    chords = _PROGRESSIONS[rng.integers(len(_PROGRESSIONS))]
    if rng.random() < 0.3:
        chords = tuple(int(d) for d in rng.integers(0, 6, size=4))
    return Song(
        sample_rate=sample_rate,
        n_samples=n_samples,
        step_seconds=15.0 / bpm,
        swing=0.0 if rng.random() < 0.7 else rng.uniform(0.1, 0.3),
        tonic=int(rng.integers(12)),
        scale=_MAJOR if rng.random() < 0.5 else _MINOR,
        chords=chords,
        steps_per_chord=steps_per_chord,
        seventh=bool(rng.random() < 0.3),
    )


def nearest_midi(pitch_class: int, center: int) -> int:
    """The MIDI pitch of ``pitch_class`` in ``[center - 6, center + 6)``."""
    low = center - 6
    return low + (pitch_class - low) % 12


def _midi_hz(midi: np.ndarray | float) -> np.ndarray | float:
    """Frequency in Hz of (possibly fractional) MIDI pitch ``midi``, any shape."""
    return 440.0 * 2.0 ** ((np.asarray(midi) - 69.0) / 12.0)


def _butter(x: np.ndarray, kind: str, cutoff: float | tuple[float, float], sr: int, order: int = 2) -> np.ndarray:
    """Butterworth ``kind`` ('lowpass', 'highpass', 'bandpass') filter of ``x`` (any shape, last axis time).

    Cutoffs are clamped into (0, 0.45 * sr) so the same parameters work at every sample rate.
    """
    wn = np.clip(np.atleast_1d(np.asarray(cutoff, dtype=float)) / (sr / 2.0), 1e-4, 0.9)
    sos = signal.butter(order, wn if wn.size > 1 else wn[0], btype=kind, output="sos")
    return signal.sosfilt(sos, x, axis=-1)


def _one_pole(x: np.ndarray, seconds: float, sr: int, axis: int = -1) -> np.ndarray:
    """One-pole low-pass smoothing of ``x`` (any shape) along ``axis`` with time constant ``seconds``.

    The filter starts settled at the first value, so a constant input passes unchanged.
    """
    a = np.exp(-1.0 / (seconds * sr))
    first = np.take(x, [0], axis=axis)
    zi = a * first
    y, _ = signal.lfilter([1.0 - a], [1.0, -a], x, axis=axis, zi=zi)
    return y


def _adsr(length: int, gate: int, sr: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    """Attack-decay-sustain-release envelope of shape ``(length,)``.

    Rises linearly over ``attack`` seconds, falls to ``sustain`` over ``decay`` seconds, and from sample
    ``gate`` on fades linearly to zero over ``release`` seconds.
    """
    t = (np.arange(length) + 1.0) / sr
    on = np.interp(t, [0.0, attack, attack + decay], [0.0, 1.0, sustain])
    off = np.clip(1.0 - (t - gate / sr) / release, 0.0, 1.0)
    return on * off


def _place(n: int, hits: list[tuple[int, np.ndarray, float]]) -> np.ndarray:
    """Mix sounds into a ``(n,)`` track; each hit is ``(start sample, sound (m,), gain)``, cut at ``n``."""
    out = np.zeros(n)
    for start, sound, gain in hits:
        if 0 <= start < n:
            seg = sound[: n - start]
            out[start : start + seg.size] += gain * seg
    return out


def _line_pitch(notes: list[Note], n: int) -> np.ndarray:
    """MIDI pitch per sample, shape ``(n,)``, of a monophonic line: each note holds until the next starts."""
    pitch = np.full(n, notes[0].midi)
    for note, nxt in zip(notes, notes[1:] + [Note(n, n, 0.0)]):
        pitch[note.start : nxt.start] = note.midi
    return pitch


def _line_envelope(
    notes: list[Note], n: int, sr: int, attack: float, decay: float, sustain: float, release: float
) -> np.ndarray:
    """Amplitude envelope ``(n,)`` of a monophonic line: per-note ADSR, overlapping releases take the max."""
    env = np.zeros(n)
    tail = int(release * sr)
    for note in notes:
        length = min(note.stop - note.start + tail, n - note.start)
        if length > 0:
            seg = env[note.start : note.start + length]
            np.maximum(seg, _adsr(length, note.stop - note.start, sr, attack, decay, sustain, release), out=seg)
    return env


def _additive(
    f0: np.ndarray, weights: np.ndarray, sr: int, phase0: float, damping: np.ndarray | None = None
) -> np.ndarray:
    """Harmonic tone ``sum_k weights[k-1] * damping ** (k-1) * sin(k * phase)`` following ``f0`` (n,) in Hz.

    Uses the Chebyshev recurrence ``sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x)`` (a few multiply-adds per
    harmonic and sample, in float32); harmonics fade out where they would pass 0.45 * sr, so nothing aliases.

    Args:
        f0: ``(n,)`` fundamental frequency per sample.
        weights: ``(K,)`` amplitude of harmonics 1..K.
        sr: sample rate.
        phase0: starting phase in radians.
        damping: optional ``(n,)`` factor applied once more per harmonic number (upper partials of a
            plucked string die away faster).

    Returns:
        ``(n,)`` tone.
    """
    limit, fade = 0.45 * sr, 0.05 * sr
    phase = phase0 + 2.0 * np.pi * np.cumsum(f0) / sr
    two_cos = (2.0 * np.cos(phase)).astype(np.float32)
    prev, cur = np.zeros(f0.size, np.float32), np.sin(phase).astype(np.float32)
    out = np.float32(weights[0]) * cur
    level = None if damping is None else np.ones(f0.size, np.float32)
    f0_faded = (f0 / fade).astype(np.float32)
    f_min, f_max = float(f0.min()), float(f0.max())
    for k in range(2, len(weights) + 1):
        if k * f_min >= limit:
            break
        nxt = two_cos * cur
        nxt -= prev
        prev, cur = cur, nxt
        if k * f_max <= limit - fade:
            amp = np.float32(weights[k - 1])
        else:  # 1 below limit - fade, 0 above limit
            amp = np.float32(limit / fade) - np.float32(k) * f0_faded
            np.clip(amp, 0.0, 1.0, out=amp)
            amp *= np.float32(weights[k - 1])
        if level is not None:
            level *= damping
            amp = amp * level
        out += amp * cur
    return out.astype(np.float64)


def _rms(x: np.ndarray) -> float:
    """Root-mean-square value of ``x`` (any shape); a tiny floor keeps it non-zero."""
    return float(np.sqrt(np.mean(np.square(x)))) + 1e-12


def finish_stem(rng: np.random.Generator, mono: np.ndarray, channels: int, sr: int, max_pan: float) -> np.ndarray:
    """Pan/widen a ``(n,)`` stem to ``(channels, n)`` and set its RMS level; returns float32."""
    if channels == 1:
        audio = mono[None, :]
    else:
        pan = rng.uniform(-max_pan, max_pan)
        width = rng.uniform(0.0, 0.5)
        delay = max(1, int(rng.uniform(0.004, 0.02) * sr))
        side = np.zeros_like(mono)
        side[delay:] = width * mono[: max(mono.size - delay, 0)]  # a delayed copy, in opposite phase per side
        angle = (pan + 1.0) * np.pi / 4.0
        audio = np.sqrt(2.0) * np.stack([np.cos(angle) * (mono + side), np.sin(angle) * (mono - side)])
    gain = min(10.0 ** (rng.uniform(*_LEVEL_DB) / 20.0) / _rms(audio), _PEAK / np.abs(audio).max())
    return (gain * audio).astype(np.float32)


# --- drums -----------------------------------------------------------------------------------------


def _pitched_drum(
    rng: np.random.Generator, sr: int, f_end: float, sweep: float, decay: float, click: float
) -> np.ndarray:
    """Kick or tom: a sine falling from ``f_end * sweep`` to ``f_end`` Hz, decaying over ``decay`` s.

    Returns:
        ``(m,)`` sound, gently saturated, with a short noise click of relative level ``click``.
    """
    t = np.arange(int(min(5.0 * decay, 1.0) * sr)) / sr
    freq = f_end * (1.0 + (sweep - 1.0) * np.exp(-t / rng.uniform(0.01, 0.04)))
    body = np.sin(2.0 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / decay)
    noise = _butter(rng.standard_normal(t.size), "lowpass", 4000.0, sr) * np.exp(-t / 0.003)
    drive = rng.uniform(1.0, 3.0)
    return np.tanh(drive * (body + click * noise)) / np.tanh(drive)


def _snare(
    rng: np.random.Generator,
    sr: int,
    tone_hz: float,
    tone_decay: float,
    noise_decay: float,
    band: tuple[float, float],
    snappy: float,
) -> np.ndarray:
    """Snare: a two-mode drum tone at ``tone_hz`` plus band-passed noise of relative level ``snappy``; (m,)."""
    t = np.arange(int(min(5.0 * max(tone_decay, noise_decay), 0.8) * sr)) / sr
    modes = np.sin(2.0 * np.pi * tone_hz * t) + 0.5 * np.sin(2.0 * np.pi * 1.6 * tone_hz * t)
    tone = modes * np.exp(-t / tone_decay)
    noise = _butter(rng.standard_normal(t.size), "bandpass", band, sr) * np.exp(-t / noise_decay)
    noise *= 1.0 / (np.abs(noise).max() + 1e-12)
    return tone / 1.5 + snappy * noise


def _noise_burst(rng: np.random.Generator, sr: int, cutoff: float, decay: float) -> np.ndarray:
    """Hat or cymbal: white noise high-passed at ``cutoff`` Hz decaying over ``decay`` s; (m,), peak 1."""
    t = np.arange(int(min(5.0 * decay, 3.0) * sr)) / sr
    burst = _butter(rng.standard_normal(t.size), "highpass", cutoff, sr, order=4) * np.exp(-t / decay)
    return burst / (np.abs(burst).max() + 1e-12)


def _drum_kit(rng: np.random.Generator, sr: int) -> dict[str, list[np.ndarray]]:
    """This song's drum sounds: name -> variants (each ``(m,)``), with per-song tuning and decays."""
    hat_cut = rng.uniform(5000.0, 9000.0)
    hat_decay = rng.uniform(0.015, 0.05)
    tom_hz = rng.uniform(90.0, 160.0)
    snare = {
        "tone_hz": rng.uniform(160.0, 260.0),
        "tone_decay": rng.uniform(0.03, 0.08),
        "noise_decay": rng.uniform(0.06, 0.2),
        "band": (rng.uniform(800.0, 2000.0), rng.uniform(5000.0, 9000.0)),
        "snappy": rng.uniform(0.4, 1.2),
    }
    kick = _pitched_drum(
        rng, sr, rng.uniform(42.0, 62.0), rng.uniform(2.0, 4.0), rng.uniform(0.08, 0.25), rng.uniform(0.05, 0.4)
    )
    return {
        "kick": [kick],
        "snare": [_snare(rng, sr, **snare) for _ in range(3)],
        "hat": [_noise_burst(rng, sr, hat_cut, hat_decay * rng.uniform(0.8, 1.2)) for _ in range(4)],
        "open_hat": [_noise_burst(rng, sr, hat_cut, rng.uniform(0.12, 0.3))],
        "tom_hi": [_pitched_drum(rng, sr, 1.5 * tom_hz, 1.4, rng.uniform(0.15, 0.3), 0.1)],
        "tom_lo": [_pitched_drum(rng, sr, tom_hz, 1.4, rng.uniform(0.15, 0.3), 0.1)],
        "crash": [_noise_burst(rng, sr, rng.uniform(2500.0, 5000.0), rng.uniform(0.5, 1.2))],
    }


def drum_hits(rng: np.random.Generator, song: Song) -> list[tuple[int, str, float]]:
    """The song's drum pattern as ``(step, sound name, velocity)``: groove, ghost notes, fills and crashes."""
    hat_every = int(rng.choice([1, 2, 4], p=[0.3, 0.55, 0.15]))
    kicks = set(_KICK_PATTERNS[rng.integers(len(_KICK_PATTERNS))])
    snares = {8} if rng.random() < 0.25 else {4, 12}
    ghost_prob = rng.uniform(0.0, 0.15)
    open_hat = rng.random() < 0.4
    fill_every = int(rng.choice([2, 4, 8]))
    fill_prob = rng.uniform(0.3, 0.9)
    hits: list[tuple[int, str, float]] = []
    crash = rng.random() < 0.5
    for bar in range(-(-song.n_steps // STEPS_PER_BAR)):
        base = bar * STEPS_PER_BAR
        if crash:
            hits.append((base, "crash", rng.uniform(0.5, 0.8)))
        fill = int(rng.choice([4, 8])) if (bar + 1) % fill_every == 0 and rng.random() < fill_prob else 0
        crash = fill > 0 and rng.random() < 0.6
        for s in range(STEPS_PER_BAR):
            step = base + s
            if s >= STEPS_PER_BAR - fill:
                if rng.random() < 0.8:
                    rise = (s - (STEPS_PER_BAR - fill) + 1) / fill
                    hits.append((step, str(rng.choice(["snare", "tom_hi", "tom_lo"])), 0.5 + 0.5 * rise))
                continue
            if s % hat_every == 0:
                name = "open_hat" if open_hat and s == 14 else "hat"
                hits.append((step, name, (0.8 if s % 4 == 0 else 0.55) * rng.uniform(0.8, 1.0)))
            if s in kicks:
                hits.append((step, "kick", rng.uniform(0.85, 1.0)))
            if s in snares:
                hits.append((step, "snare", rng.uniform(0.85, 1.0)))
            elif s % 2 == 1 and rng.random() < ghost_prob:
                hits.append((step, "snare", rng.uniform(0.12, 0.3)))
    return hits


def _render_drums(rng: np.random.Generator, song: Song) -> np.ndarray:
    """The drum stem ``(n,)``: the song's kit played on its pattern with a few ms of timing jitter."""
    sr = song.sample_rate
    kit = _drum_kit(rng, sr)
    jitter = int(0.003 * sr)
    hits = []
    for step, name, vel in drum_hits(rng, song):
        start = song.sample_at(step) + int(rng.integers(-jitter, jitter + 1)) if step else 0
        hits.append((start, kit[name][rng.integers(len(kit[name]))], vel))
    return _place(song.n_samples, hits)


# --- bass ------------------------------------------------------------------------------------------


def bass_notes(rng: np.random.Generator, song: Song) -> list[Note]:
    """The bass line: chord roots (MIDI 28-44, about 41-104 Hz) on a per-song rhythm, with fifths/octaves."""
    style = rng.integers(4)
    if style == 0:
        onsets = [0, 8]
    elif style == 1:
        onsets = [0, 4, 8, 12]
    elif style == 2:
        onsets = list(range(0, STEPS_PER_BAR, 2))
    else:
        onsets = [0] + [s for s in range(1, STEPS_PER_BAR) if rng.random() < (0.45 if s % 2 == 0 else 0.2)]
    lengths = np.diff(onsets + [STEPS_PER_BAR])
    gate = rng.uniform(0.5, 1.0)
    low = int(rng.integers(28, 34))
    move_prob = rng.uniform(0.0, 0.4)
    step_samples = song.step_seconds * song.sample_rate
    notes = []
    for bar in range(-(-song.n_steps // STEPS_PER_BAR)):
        for i, (onset, length) in enumerate(zip(onsets, lengths)):
            step = bar * STEPS_PER_BAR + onset
            start = song.sample_at(step)
            if start >= song.n_samples:
                return notes
            root = song.chord_root(step)
            midi = nearest_midi(song.tonic + song.semitones(root), low + 6)
            if i > 0 and rng.random() < move_prob:
                midi += int(rng.choice([12, song.semitones(root + 4) - song.semitones(root)]))
            notes.append(Note(start, start + max(1, int(length * gate * step_samples)), float(midi)))
    return notes


def _render_bass(rng: np.random.Generator, song: Song) -> np.ndarray:
    """The bass stem ``(n,)``: saw/square/sine-ish harmonic mix of the bass line, enveloped and low-passed."""
    sr = song.sample_rate
    notes = bass_notes(rng, song)
    f0 = _midi_hz(_one_pole(_line_pitch(notes, song.n_samples), rng.uniform(0.001, 0.015), sr))
    k = np.arange(1, 17)
    shapes = np.stack([1.0 / k, np.where(k % 2 == 1, 1.0 / k, 0.0), k**-3.0])  # saw, square, sine-ish
    weights = rng.dirichlet([1.0, 1.0, 1.0]) @ shapes * np.exp(rng.normal(0.0, 0.25, k.size))
    env = _line_envelope(
        notes,
        song.n_samples,
        sr,
        attack=rng.uniform(0.003, 0.02),
        decay=rng.uniform(0.05, 0.4),
        sustain=rng.uniform(0.3, 0.9),
        release=rng.uniform(0.02, 0.12),
    )
    tone = _additive(f0, weights, sr, rng.uniform(0.0, 2.0 * np.pi)) * env
    return _butter(tone, "lowpass", rng.uniform(250.0, 1400.0), sr)


# --- other -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PluckTimbre:
    """A plucked string of decaying harmonics.

    Attributes:
        brightness: harmonic amplitudes fall as ``k ** -brightness``.
        position: pluck position along the string (0..0.5); harmonics with a node there are weak.
        decay: time constant in s of the fundamental (at 220 Hz; higher notes decay faster).
        damping: extra decay rate in 1/s per harmonic number above 1.
    """

    brightness: float
    position: float
    decay: float
    damping: float

    def sound(self, midi: int, sr: int) -> np.ndarray:
        """One plucked note at MIDI pitch ``midi``, ringing for at most 1.5 s with a fade-out; ``(m,)``."""
        freq = float(_midi_hz(midi))
        decay = self.decay * (220.0 / freq) ** 0.3
        t = (np.arange(int(min(np.log(1000.0) * decay, 1.5) * sr)) + 1.0) / sr
        k = np.arange(1, 21)
        amps = k**-self.brightness * (0.1 + np.abs(np.sin(np.pi * k * self.position)))
        damping = np.exp(-t * self.damping).astype(np.float32)
        level = np.exp(-t / decay) * np.minimum(1.0, t / 0.002) * np.minimum(1.0, 5.0 * (1.0 - t / t[-1]))
        return _additive(np.full(t.size, freq), amps, sr, 0.0, damping) * level


def pluck_hits(rng: np.random.Generator, song: Song, center: int) -> list[tuple[int, int, float]]:
    """Plucked notes as ``(start sample, MIDI pitch, velocity)``: an arpeggio or strummed chords."""
    hits = []
    if rng.random() < 0.55:
        div = int(rng.choice([1, 2, 2, 4]))
        order = rng.integers(4)  # up, down, up-down, random
        octaves = int(rng.integers(1, 3))
        count = 0
        for step in range(0, song.n_steps, div):
            if step % song.steps_per_chord == 0:
                count = 0
            tones = [m + 12 * o for o in range(octaves) for m in song.chord_midis(step, center)]
            if order == 1:
                tones = tones[::-1]
            elif order == 2:
                tones = tones + tones[-2:0:-1]
            index = int(rng.integers(len(tones))) if order == 3 else count % len(tones)
            hits.append((song.sample_at(step), tones[index], 1.0 if step % 4 == 0 else rng.uniform(0.6, 0.85)))
            count += 1
    else:
        onsets = _STRUM_PATTERNS[rng.integers(len(_STRUM_PATTERNS))]
        spread = rng.uniform(0.005, 0.025) * song.sample_rate
        for bar in range(-(-song.n_steps // STEPS_PER_BAR)):
            for i, onset in enumerate(onsets):
                step = bar * STEPS_PER_BAR + onset
                tones = song.chord_midis(step, center)
                vel = (1.0 if onset % 8 == 0 else 0.75) * rng.uniform(0.85, 1.0)
                for j, midi in enumerate(tones if i % 2 == 0 else tones[::-1]):
                    hits.append((song.sample_at(step) + int(j * spread), midi, vel))
    return hits


def _render_plucks(rng: np.random.Generator, song: Song, center: int) -> np.ndarray:
    """Plucked-string part ``(n,)``: each pitch is synthesised once and placed at every hit."""
    timbre = _PluckTimbre(
        brightness=rng.uniform(0.6, 1.6),
        position=rng.uniform(0.08, 0.3),
        decay=rng.uniform(0.2, 0.9),
        damping=rng.uniform(0.5, 6.0),
    )
    cache: dict[int, np.ndarray] = {}
    hits = []
    for start, midi, vel in pluck_hits(rng, song, center):
        if midi not in cache:
            cache[midi] = timbre.sound(midi, song.sample_rate)
        hits.append((start, cache[midi], vel))
    return _place(song.n_samples, hits)


def _saws(freqs: np.ndarray, n: int, sr: int, phases: np.ndarray) -> np.ndarray:
    """Band-limited (polyBLEP) sawtooth waves, shape ``(len(freqs), n)``, starting at ``phases`` (cycles)."""
    dt = (freqs / sr)[:, None]
    t = phases[:, None] + dt * np.arange(n)
    t -= np.floor(t)
    out = 2.0 * t - 1.0
    dt = np.broadcast_to(dt, t.shape)
    rising = t < dt  # just after a wrap: smooth the jump with a polynomial residual
    x = t[rising] / dt[rising]
    out[rising] -= 2.0 * x - x * x - 1.0
    falling = t > 1.0 - dt  # just before a wrap
    x = (t[falling] - 1.0) / dt[falling]
    out[falling] -= x * x + 2.0 * x + 1.0
    return out


def _render_pad(rng: np.random.Generator, song: Song, center: int) -> np.ndarray:
    """Pad part ``(n,)``: each chord held on detuned saws with a slow attack, then low-passed."""
    sr, n = song.sample_rate, song.n_samples
    voices = int(rng.integers(2, 4))
    detune = np.linspace(-1.0, 1.0, voices) * rng.uniform(4.0, 18.0)  # cents
    attack, release = rng.uniform(0.08, 0.6), rng.uniform(0.15, 0.5)
    out = np.zeros(n)
    for step in range(0, song.n_steps, song.steps_per_chord):
        start = song.sample_at(step)
        gate = song.sample_at(step + song.steps_per_chord) - start
        length = min(gate + int(release * sr), n - start)
        if length <= 0:
            break
        freqs = np.array([_midi_hz(m + c / 100.0) for m in song.chord_midis(step, center) for c in detune])
        tone = _saws(freqs, length, sr, rng.random(freqs.size)).sum(axis=0)
        env = _adsr(length, gate, sr, min(attack, 0.5 * gate / sr), 0.2, rng.uniform(0.7, 1.0), release)
        out[start : start + length] += tone * env
    return _butter(out, "lowpass", rng.uniform(700.0, 3500.0), sr)


def _render_other(rng: np.random.Generator, song: Song) -> np.ndarray:
    """The ``other`` stem ``(n,)``: plucked arpeggios/strums, a pad, or both, in the mid range."""
    center = int(rng.integers(55, 70))
    style = rng.choice(["pluck", "pad", "both"], p=[0.45, 0.25, 0.3])
    if style == "pluck":
        return _render_plucks(rng, song, center)
    pad = _render_pad(rng, song, center)
    if style == "pad":
        return pad
    plucks = _render_plucks(rng, song, center + int(rng.choice([0, 12])))
    return plucks / _rms(plucks) + rng.uniform(0.3, 0.8) * pad / _rms(pad)


# --- vocals ----------------------------------------------------------------------------------------


def melody(rng: np.random.Generator, song: Song, center: int, n_vowels: int) -> tuple[list[Note], list[int], list[int]]:
    """A sung melody: phrases of 12-32 steps of scale notes separated by 2-8 step rests.

    The pitch walks the scale in small steps and lands on chord tones on strong beats.

    Returns:
        The notes, each note's vowel index (< ``n_vowels``) and the index of each phrase's first note.
    """
    tonic = nearest_midi(song.tonic, center)
    degree = int(rng.integers(0, 5))
    notes: list[Note] = []
    vowels: list[int] = []
    phrase_starts: list[int] = []
    step = 0
    while song.sample_at(step) < song.n_samples:
        end = step + int(rng.choice([12, 16, 24, 32]))
        phrase_starts.append(len(notes))
        while step < end and song.sample_at(step) < song.n_samples:
            length = min(int(rng.choice([2, 3, 4, 6, 8], p=[0.25, 0.15, 0.3, 0.15, 0.15])), end - step)
            if step % 8 == 0:
                degree = _nearest_chord_degree(degree, song.chord_root(step))
            midi = float(tonic + song.semitones(degree))
            notes.append(Note(song.sample_at(step), song.sample_at(step + length), midi))
            vowels.append(int(rng.integers(n_vowels)))
            step += length
            degree = int(np.clip(degree + rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3]), -4, 8))
        step = end + int(rng.choice([2, 4, 6, 8]))
    return notes, vowels, phrase_starts


def _nearest_chord_degree(degree: int, root: int) -> int:
    """The scale degree nearest to ``degree`` that belongs to the triad on ``root``."""
    chord = {root % 7, (root + 2) % 7, (root + 4) % 7}
    return next(degree + d for d in (0, -1, 1, -2, 2, -3, 3) if (degree + d) % 7 in chord)


def _vibrato(rng: np.random.Generator, notes: list[Note], n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Vibrato in semitones ``(n,)`` and its phase ``(n,)``: 5-6 Hz, depth fading in after each note starts."""
    depth = np.zeros(n)
    song_depth, delay = rng.uniform(0.15, 0.6), rng.uniform(0.05, 0.25)
    for note in notes:
        t = np.arange(min(note.stop, n) - note.start) / sr
        fade_in = np.clip((t - delay) / 0.2, 0.0, 1.0)
        depth[note.start : note.start + t.size] = song_depth * rng.uniform(0.6, 1.3) * fade_in
    t = np.arange(n) / sr
    drift = 0.2 * np.sin(2.0 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0.0, 2.0 * np.pi))
    rate = rng.uniform(5.0, 6.0) + drift
    phase = 2.0 * np.pi * np.cumsum(rate) / sr
    return _one_pole(depth, 0.05, sr) * np.sin(phase), phase


def _formants(rng: np.random.Generator, source: np.ndarray, vowel_tracks: np.ndarray, sr: int) -> np.ndarray:
    """Filter ``source`` (n,) through vowel formants, crossfading vowels by ``vowel_tracks`` (V, n).

    Each vowel is three parallel resonators (F1..F3, scaled per song), merged into one 6th-order filter.

    Returns:
        ``(n,)`` sung sound.
    """
    vowels = _VOWELS[rng.choice(len(_VOWELS), size=vowel_tracks.shape[0], replace=False)]
    freqs = np.minimum(vowels * rng.uniform(0.9, 1.2) * rng.uniform(0.95, 1.05, size=vowels.shape), 0.45 * sr)
    widths = np.array([rng.uniform(60, 110), rng.uniform(80, 140), rng.uniform(110, 200)])
    gains = np.array([1.0, rng.uniform(0.3, 0.8), rng.uniform(0.15, 0.5)])
    out = np.zeros_like(source)
    for track, formants in zip(vowel_tracks, freqs):
        sections = [signal.iirpeak(f, f / w, fs=sr) for f, w in zip(formants, widths)]
        den = np.polymul(np.polymul(sections[0][1], sections[1][1]), sections[2][1])
        num = np.zeros(1)
        for i, (b, _) in enumerate(sections):
            others = [a for j, (_, a) in enumerate(sections) if j != i]
            num = np.polyadd(num, gains[i] * np.polymul(b, np.polymul(*others)))
        out += track * signal.lfilter(num, den, source)
    return out


def _breath(rng: np.random.Generator, env: np.ndarray, phrase_onsets: list[int], sr: int) -> np.ndarray:
    """Breath noise ``(n,)``: aspiration following the envelope ``env`` plus short inhales before phrases."""
    n = env.size
    noise = _butter(rng.standard_normal(n), "bandpass", (rng.uniform(1200, 2000), rng.uniform(4000, 6000)), sr)
    gate = env.copy()
    length = int(rng.uniform(0.15, 0.3) * sr)
    inhale = 0.5 * np.hanning(length)
    for onset in phrase_onsets:
        if onset >= length and rng.random() < 0.6 and not env[onset - length : onset].any():
            gate[onset - length : onset] += inhale
    return noise * gate


def _render_vocals(rng: np.random.Generator, song: Song) -> np.ndarray:
    """The vocal stem ``(n,)``: a formant-filtered harmonic voice with glides, vibrato and breath."""
    sr, n = song.sample_rate, song.n_samples
    n_vowels = int(rng.integers(3, 6))
    notes, vowels, phrase_starts = melody(rng, song, int(rng.integers(55, 70)), n_vowels)
    pitch = _line_pitch(notes, n)
    for first in phrase_starts[1:]:  # scoop up into each phrase from slightly below
        pitch[notes[first - 1].stop : notes[first].start] = notes[first].midi - rng.uniform(0.0, 1.5)
    vibrato, vib_phase = _vibrato(rng, notes, n, sr)
    f0 = _midi_hz(_one_pole(pitch, rng.uniform(0.02, 0.08), sr) + vibrato)
    env = _line_envelope(
        notes,
        n,
        sr,
        attack=rng.uniform(0.03, 0.08),
        decay=0.1,
        sustain=rng.uniform(0.7, 0.95),
        release=rng.uniform(0.08, 0.2),
    )
    env *= 1.0 + rng.uniform(0.0, 0.15) * np.sin(vib_phase)
    k = np.arange(1, 31)
    weights = k ** -rng.uniform(0.7, 1.3) * np.exp(rng.normal(0.0, 0.15, k.size))
    source = _additive(f0, weights, sr, rng.uniform(0.0, 2.0 * np.pi)) * env
    tracks = np.zeros((n_vowels, n))
    for note, nxt, vowel in zip(notes, notes[1:] + [Note(n, n, 0.0)], vowels):
        tracks[vowel, note.start : nxt.start] = 1.0
    voiced = _formants(rng, source, _one_pole(tracks, rng.uniform(0.02, 0.06), sr), sr)
    breath = _breath(rng, env, [notes[i].start for i in phrase_starts], sr)
    breath_gain = 10.0 ** (rng.uniform(-30.0, -18.0) / 20.0) * _rms(voiced) / _rms(breath)
    return voiced + breath_gain * breath
