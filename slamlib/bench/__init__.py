"""Speed benchmarks behind `python -m slamlib bench ...`, printed as JSON; no notebook depends on them.

One module per family: `tokenize` (seconds of audio tokenized per second), `ceilings` (what the
hardware does at best), `train` (training throughput and MFU, beside a transformers Trainer),
`profile` (where a step's time goes), `attention` (the varlen kernel, checked and timed),
`precision` (bf16 against fp32), `memory` (the paper batch on a 24 GiB card), `eval` (pairs
scored per second) and `gpu` (all of them on one GPU, in one process). `timing` and `setup` hold
what they share. Nothing is imported here: import the module you need.
"""
