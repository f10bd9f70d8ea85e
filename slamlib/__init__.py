"""slamlib: the Slam recipe (arXiv 2502.15814) as a small library behind the tutorial notebooks.

One package (or module) per stage of the recipe, named as the notebooks name them: `tokenization`
(01), `model` and `text_lm` (02), `data` (03), `train` (04), `dpo` (05), `evaluate` and `vocoders`
(06); beneath them `audio`, `profiles`, `hub`, `runs` and `plots`; above them `cli`, `pipeline`
and `bench`. `python -m slamlib --help` lists the command line. Importing the package is cheap:
submodules load on first use (`slamlib.profiles`, `slamlib.tokenization.units`, ...).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {  # the stages in the order of the recipe, then what they stand on and what stands on them
    "tokenization", "data", "model", "text_lm", "train", "dpo", "evaluate", "genppl", "metrics", "vocoders",
    "audio", "hub", "profiles", "progress", "runs", "plots", "report", "cli", "pipeline", "bench",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)
