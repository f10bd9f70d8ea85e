"""The data, the stage notebook 03 teaches: the speech a speech LM is trained and evaluated on.

`stories` (a small story world: texts, preference pairs and benchmark sentences), `tts` and its
worker `_espeak_worker` (espeak-ng speech, deterministic), `synth` (the tiny profile's synthetic
corpora, spoken and tokenized), `corpora` (the paper's hub corpora, read and tokenized),
`speech_sample` (a few spoken sentences for fitting k-means), `benchmarks` (the pairwise
benchmarks' files). Nothing is imported here: import the module you need.
"""
