"""`LocalAudioTransport` on a machine without a sound device: a clear, actionable error."""

from __future__ import annotations

import pytest

from voicegw.transports.local_audio import AudioDeviceUnavailable, LocalAudioTransport, device_available


def test_no_device_is_a_clear_error() -> None:
    # This machine has no PortAudio library and no sound card.
    assert device_available() is False
    with pytest.raises(AudioDeviceUnavailable, match=r"pip install 'voicegw\[audio\]'"):
        LocalAudioTransport(sample_rate=16000)


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # as if the extra were not installed
    with pytest.raises(AudioDeviceUnavailable, match=r"needs the 'sounddevice' package: pip install"):
        LocalAudioTransport()
