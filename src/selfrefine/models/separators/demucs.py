"""Demucs v3: ``demucs.hdemucs.HDemucs`` (hybrid waveform/spectrogram U-Net), trained with an L1 waveform loss.

``demucs.model`` in params.yaml holds HDemucs's keyword arguments; on demucs 4.1, ``nfft`` 4096 needs
``depth`` >= 5 and 1024 needs ``depth`` >= 4 (2048 fails).
"""

from demucs.hdemucs import HDemucs

from selfrefine.models import losses

MODEL = HDemucs
LOSSES = {"l1": losses.l1, "mse": losses.mse}
