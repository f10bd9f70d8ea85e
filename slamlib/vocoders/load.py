"""The vocoder that fits a speech tokenizer's units: the one place that knows every vocoder.

Imports go one way: `base` (the interface and shared helpers) <- `griffin_lim`, `hifigan` <- `load`.
"""

from __future__ import annotations

from slamlib.tokenization.features import HubertExtractor, LogMelExtractor
from slamlib.vocoders.griffin_lim import GriffinLimVocoder
from slamlib.vocoders.hifigan import HIFIGAN_CHECKPOINT_URL, HIFIGAN_CONFIG_URL, UnitHiFiGAN


def load_vocoder(speech_tokenizer, *, hifigan_checkpoint: str | None = None, hifigan_config: str | None = None,
                 device="cpu") -> GriffinLimVocoder | UnitHiFiGAN:
    """The vocoder for a speech tokenizer's units: Griffin-Lim for log-mel units, the unit
    HiFi-GAN (official files unless others are given) for HuBERT units.

    The official HiFi-GAN speaks the official k-means' 500 units at 25 Hz; a HuBERT tokenizer with
    other units needs a vocoder trained on them."""
    extractor = speech_tokenizer.extractor
    if isinstance(extractor, LogMelExtractor):
        return GriffinLimVocoder.from_tokenizer(speech_tokenizer, device=device)
    if isinstance(extractor, HubertExtractor):
        vocoder = UnitHiFiGAN.from_pretrained(hifigan_checkpoint or HIFIGAN_CHECKPOINT_URL,
                                              hifigan_config or HIFIGAN_CONFIG_URL, device=device)
        if vocoder.n_units != speech_tokenizer.n_units:
            raise ValueError(f"the unit HiFi-GAN knows {vocoder.n_units} units; the speech tokenizer has "
                             f"{speech_tokenizer.n_units}")
        if abs(vocoder.samples_per_frame * speech_tokenizer.frame_rate - vocoder.sample_rate) > 1e-6:
            raise ValueError(f"the unit HiFi-GAN makes {vocoder.samples_per_frame} samples per unit frame at "
                             f"{vocoder.sample_rate} Hz, but the units come at {speech_tokenizer.frame_rate} Hz")
        return vocoder
    raise TypeError(f"no vocoder for units from {type(extractor).__name__} features "
                    "(known: LogMelExtractor -> Griffin-Lim, HubertExtractor -> unit HiFi-GAN)")
