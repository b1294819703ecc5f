"""Audio plumbing: WAV in and out, resampling, message audio from an alert's resource."""

from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from adapters.eas import audio
from adapters.eas import same_modem as sm
from tests.audio.conftest import write_wav
from tests.helpers import require_tool


def tone(rate: int, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(round(rate * seconds)) / rate)


class TestWav:
    """WAV files are written and read in chunks; odd formats are refused by name."""

    def test_write_and_read_back_in_chunks(self, tmp_path: Path) -> None:
        path = tmp_path / "t.wav"
        chunks = [tone(16000, 0.5), tone(16000, 0.7)]
        assert audio.write_wav(path, iter(chunks), 16000) == 19200
        rate, it = audio.open_wav(path)
        back = np.concatenate(list(it))
        assert rate == 16000
        assert np.allclose(back, np.concatenate(chunks), atol=1e-4)

    def test_stereo_and_8_bit_are_mixed_to_mono_float(self, tmp_path: Path) -> None:
        path = tmp_path / "s.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(1)
            out.setframerate(8000)
            out.writeframes(bytes([128 + 64, 128 - 64] * 100))
        _, it = audio.open_wav(path)
        assert np.allclose(np.concatenate(list(it)), 0.0)

    def test_not_a_wav(self) -> None:
        with pytest.raises(audio.AudioFormatError, match="not a PCM WAV"):
            audio.open_wav(io.BytesIO(b"RIFF....WAVEjunk"))

    def test_resample_keeps_pitch(self) -> None:
        x = audio.resample(tone(22050, 1.0, 1000.0), 22050, 8000)
        assert x.size == 8000
        peak = np.argmax(np.abs(np.fft.rfft(x))) * 8000 / x.size
        assert peak == pytest.approx(1000.0, abs=2)


class TestMessageAudio:
    """An alert's own audio resource (WAV, or Ogg/MP3 through sox) becomes message audio."""

    def test_wav_resource(self, tmp_path: Path) -> None:
        data = write_wav(tmp_path / "m.wav", tone(44100), 44100).read_bytes()
        x = audio.decode_audio_bytes(data, 22050, "audio/x-wav")
        assert x.size == 22050

    def test_ogg_resource_through_sox(self, tmp_path: Path) -> None:
        sox = require_tool("sox")
        wav = write_wav(tmp_path / "m.wav", tone(44100, 2.0), 44100)
        ogg = tmp_path / "m.ogg"
        subprocess.run([sox, "-V1", str(wav), str(ogg)], check=True, timeout=60)
        x = audio.decode_audio_bytes(ogg.read_bytes(), 22050, "audio/ogg")
        assert abs(x.size - 2 * 22050) < 2205
        # Ogg files named by extension work from the command line path too.
        assert sum(c.size for c in audio.load_message_audio(ogg, 22050)) == x.size

    def test_unknown_resource_type_is_refused(self) -> None:
        with pytest.raises(audio.AudioFormatError, match="video/mp4"):
            audio.decode_audio_bytes(b"\x00\x01\x02\x03", 22050, "video/mp4")

    def test_message_between_attention_and_eom_decodes(self, tmp_path: Path) -> None:
        header = "ZCZC-CIV-CEM-036029+0100-1231500-BORDERLN-"
        message = audio.load_message_audio(write_wav(tmp_path / "m.wav", tone(8000), 8000), 22050)
        x = np.concatenate(list(sm.encode(header, sm.EncoderOptions(attention=1), message=message)))
        assert [m.text for m in sm.decode(x)] == [header, "NNNN"]
