from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from selfrefine.data.audio import AudioError, read_audio, rms_db, write_audio


def test_write_read_round_trip_is_exact(tmp_path: Path) -> None:
    audio = np.random.default_rng(0).uniform(-1, 1, (2, 1000)).astype(np.float32)
    write_audio(tmp_path / "a.wav", audio, 8000)
    np.testing.assert_array_equal(read_audio(tmp_path / "a.wav", 8000, 2), audio)
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file is left behind"


def test_conversion_of_rate_and_channels(tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "s.wav", np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1), 16000)
    audio = read_audio(tmp_path / "s.wav", 8000, 1)
    assert audio.shape == (1, 8000)
    with pytest.raises(AudioError, match="sample rate 16000 Hz, expected 8000 Hz"):
        read_audio(tmp_path / "s.wav", 8000, 2, convert=False)
    with pytest.raises(AudioError, match="has 2 channels, expected 1"):
        read_audio(tmp_path / "s.wav", 16000, 1, convert=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not audio at all", "unreadable audio"), (None, "empty audio"), ("nan", "NaN or infinite")],
)
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "bad.wav"
    if content is None:
        sf.write(path, np.zeros((0, 1)), 8000)
    elif content == "nan":
        sf.write(path, np.array([[0.1], [np.nan]]), 8000, subtype="FLOAT")
    else:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as err:
        read_audio(path, 8000, 1)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_rms_db() -> None:
    assert rms_db(np.zeros((1, 10))) == float("-inf")
    assert rms_db(np.full((1, 10), 0.1)) == pytest.approx(-20.0)


def test_a_header_that_claims_weeks_of_audio_or_an_absurd_rate_is_one_line_not_an_allocation(tmp_path: Path) -> None:
    # both found by the audio fuzz drill (benchmarks/drills.py): reading trusted the header and asked for 240 GiB
    flac = tmp_path / "long.flac"
    sf.write(str(flac), np.zeros(1600, dtype=np.float32), 16000, subtype="PCM_16")
    data = bytearray(flac.read_bytes())
    data[21] |= 0x0F  # STREAMINFO's 36-bit total sample count: about 2^36 frames, seven weeks at 16 kHz
    data[22:26] = b"\xff\xff\xff\xff"
    flac.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=r"long\.flac: its header claims \d+ h of audio, more than 24 h"):
        read_audio(flac, 16000, 1)
    wav = tmp_path / "rate.wav"
    write_audio(wav, np.zeros((1, 1600), dtype=np.float32), 16000)
    data = bytearray(wav.read_bytes())
    data[24:28] = (2**31 - 1).to_bytes(4, "little")  # the fmt chunk's sample rate
    wav.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=r"rate\.wav: sample rate 2147483647 Hz in its header, outside 1000-768000"):
        read_audio(wav, 16000, 1)
