"""Results next to the paper's: the published rows and a table that puts a run beside them.

The paper rows are the Slam model card's (arXiv 2502.15814, Table 2): Slam without DPO and with it
on one A5000 for a day, and Slam scaled (2 A100s, two days), without and with DPO. sBLIMP, sStoryCloze and tStoryCloze are accuracies in percent; GenPPL is lower-better.
"""

from __future__ import annotations

import pandas as pd

# Model card / paper Table 2. Slam (-DPO) on one A5000 is REFERENCE §4's (the card lists the 2xA100 one).
PAPER_ROWS = [
    {"model": "Slam (-DPO), paper", "hardware": "1×A5000, 24 h", "sblimp": 56.45, "ssc": 55.59, "tsc": 78.01,
     "genppl": 88.3, "auto_bleu": 3.47},
    {"model": "Slam, paper", "hardware": "1×A5000, 24 h", "sblimp": 58.86, "ssc": 58.04, "tsc": 82.04,
     "genppl": 62.8, "auto_bleu": 3.88},
    {"model": "Slam (scaled, -DPO), paper", "hardware": "2×A100, 48 h", "sblimp": 58.53, "ssc": 58.15,
     "tsc": 80.71, "genppl": 67.3, "auto_bleu": 3.25},
    {"model": "Slam (scaled), paper", "hardware": "2×A100, 48 h", "sblimp": 61.11, "ssc": 61.30, "tsc": 84.18,
     "genppl": 46.6, "auto_bleu": 3.75},
]
COLUMNS = ["model", "hardware", "sblimp", "ssc", "tsc", "genppl", "auto_bleu"]

# breakdown groups the results table shows beside a benchmark's own number: sWUGGY's in-vocabulary
# and OOV halves (SlamKit's swuggy_inter and swuggy_oov), and SALMon's parts (the official results are per part)
BESIDE = {"swuggy": lambda groups: [g for g in ("in-vocabulary", "OOV") if g in groups],
          "salmon": lambda groups: sorted(groups)}


def breakdown_tables(runs: dict[str, dict]) -> dict[str, pd.DataFrame]:
    """Per benchmark, its breakdown (sBLIMP by type; sWUGGY in-vocabulary and OOV, by frequency
    band and by length; SALMon by part; ours by category) with one accuracy column per model and
    the pairs each group counts. `runs`: {model name: evaluate_model(...) output}."""
    tables: dict[str, pd.DataFrame] = {}
    for name, result in runs.items():
        for bench, value in result.get("benchmarks", {}).items():
            if not value.get("breakdown"):
                continue
            table = tables.setdefault(bench, pd.DataFrame(index=list(value["breakdown"])))
            table[name] = pd.Series(value["breakdown"])
            if value.get("breakdown_pairs"):
                table["pairs"] = pd.Series(value["breakdown_pairs"])
    return {bench: t[[c for c in t.columns if c != "pairs"] + [c for c in t.columns if c == "pairs"]]
            for bench, t in tables.items()}


def results_table(runs: dict[str, dict], hardware: str = "") -> pd.DataFrame:
    """The paper's rows, then one row per evaluated model of this run.

    `runs`: {row name: evaluate_model(...) output, optionally with "genppl" and "auto_bleu"}."""
    rows = list(PAPER_ROWS)
    for name, result in runs.items():
        row = {"model": name, "hardware": hardware}
        for bench, value in result.get("benchmarks", {}).items():
            row[bench] = round(value["accuracy"], 2)
            for group in BESIDE.get(bench, lambda groups: ())(value.get("breakdown", {})):
                row[f"{bench} {group}"] = value["breakdown"][group]
        for key in ("genppl", "auto_bleu"):
            if result.get(key) is not None:
                row[key] = round(result[key], 2)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table[[c for c in COLUMNS if c in table.columns] + [c for c in table.columns if c not in COLUMNS]]


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-style table (empty cells for what was not measured)."""
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
