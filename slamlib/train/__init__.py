"""Packed pretraining, the stage notebook 04 teaches: a speech LM trained on units under a budget.

`packing` (documents laid end to end in rows, and the loss over them), `attention` (per-document
varlen attention over packed rows), `batches` (each step's rows, collated ahead of the device),
`schedule` (warmup and cosine, and how many steps a budget buys), `checkpoints` (exact resume and
the log), `trainer` (the loop) and `pretrain` (the entry point: a saved speech LM continued on a
run's units). Nothing is imported here: import the module you need.
"""
