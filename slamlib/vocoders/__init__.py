"""Vocoders, used by notebook 06 (evaluation) to hear what units say: units -> waveform.

`base` (the interface and what the vocoders share), `griffin_lim` (an inversion of log-mel units
with nothing learned, for the tiny profile), `hifigan` (the unit HiFi-GAN published for the
paper's mHuBERT-25Hz units) and `load` (`load_vocoder`, which picks the vocoder for a speech
tokenizer). Imports go one way: base <- griffin_lim, hifigan <- load. Nothing is imported here:
import the module you need.
"""
