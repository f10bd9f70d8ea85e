"""The tutorial's measured results, kept in a committed file, and README's tables made from it.

`results/tiny.json` holds one record per tutorial run (seed, initialisation, machine, commit, the
numbers of its metrics.json). README's results tables sit between markers
(`<!-- results:NAME -->` ... `<!-- /results:NAME -->`) and are rewritten from the file:

    python -m slamlib results add runs/tiny-seed1              # a finished run's metrics.json
    python -m slamlib results readme                           # README's tables from the file
    python -m slamlib results readme --check                   # exit 1 if README is out of date
    python -m slamlib results suite --seconds 1003             # how long .ci/run took from a fresh clone

Nothing in the tables or quoted numbers is typed by hand, so they cannot drift from the runs they report.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from pathlib import Path

from slamlib.profiles import REPO_ROOT

RESULTS_FILE = REPO_ROOT / "results" / "tiny.json"
README = REPO_ROOT / "README.md"
BENCHMARK_NAMES = {"sblimp": "sBLIMP-style", "ssc": "sStoryCloze-style", "tsc": "tStoryCloze-style",
                   "preference_heldout": "held-out pairs"}


def machine() -> str:
    """The CPU this process runs on, as a reader can compare it: cores and model name."""
    from slamlib.device import cpu_name

    return f"{os.cpu_count()} cores, {cpu_name()}"


def _commit() -> str | None:
    try:
        # "-dirty" when the run's code had changes not yet committed
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def record(run_dir: str | os.PathLike, label: str | None = None) -> dict:
    """A results record from a finished tutorial run (its metrics.json)."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run the tutorial into {run_dir} first "
                                "(python -m slamlib run --profile tiny --out ...)")
    metrics = json.loads(path.read_text())
    if "benchmarks" not in metrics:
        raise ValueError(f"{path} has no evaluation results: the run did not reach notebook 06")
    steps = metrics.get("steps", {})
    pretraining = steps.get("04_packed_pretraining", {})
    parameters = metrics.get("parameters", {})
    seed = int(parameters.get("SEED", 0))
    init = pretraining.get("init", parameters.get("INIT", "twist"))
    return {
        "label": label or (f"seed {seed}" + ("" if init == "twist" else f", {init} init")),
        "seed": seed, "init": init, "profile": metrics["profile"],
        "overrides": metrics.get("overrides", {}),
        "machine": machine(), "commit": _commit(),
        "benchmarks_before_dpo": metrics["benchmarks_before_dpo"], "benchmarks": metrics["benchmarks"],
        "intervals95": metrics.get("intervals95", {}), "pairs": metrics.get("pairs", {}),
        "preference_heldout": metrics.get("preference_heldout"), "dpo_change": metrics.get("dpo_change", {}),
        "seconds": metrics["seconds"], "total_seconds": metrics["total_seconds"],
        "tokens_per_second": pretraining.get("tokens_per_second"),
    }


def _load_file(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        return {"runs": []}
    try:
        data = json.loads(path.read_text())
        data["runs"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a results file (a JSON object with a 'runs' list): {err}") from None
    return data


def load(path: str | os.PathLike = RESULTS_FILE) -> list[dict]:
    """The tutorial runs' records."""
    return _load_file(path)["runs"]


def _save(data: dict, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=1) + "\n")
    partial.replace(path)


def add(run_dir: str | os.PathLike, label: str | None = None, path: str | os.PathLike = RESULTS_FILE) -> dict:
    """Add (or replace, by label) a run's record in the results file; returns the record."""
    new = record(run_dir, label)
    data = _load_file(path)
    data["runs"] = [r for r in data["runs"] if r["label"] != new["label"]] + [new]
    _save(data, path)
    return new


def add_suite(seconds: float, path: str | os.PathLike = RESULTS_FILE) -> dict:
    """Record how long `.ci/run` took from a fresh clone (install, tutorial and tests), on this machine."""
    if not seconds > 0:
        raise ValueError(f"the suite's time must be a positive number of seconds, not {seconds!r}")
    new = {"seconds": round(float(seconds)), "machine": machine(), "commit": _commit()}
    data = _load_file(path)
    data["suite"] = new
    _save(data, path)
    return new


def _arrow(before: float, after: float) -> str:
    return f"{before:.1f} → {after:.1f}"


def _change(change: dict | None) -> str:
    if not change:
        return ""
    return f"{change['change']:+.1f} ± {change['interval95']:.1f}"


def _mean_interval(values: list[float]) -> str:
    """Mean ± the 95% t-interval half-width over seeds (the seeds as the sample)."""
    t95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57}
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return f"{mean:+.1f}"
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return f"{mean:+.1f} ± {t95.get(n, 2.0) * sd / math.sqrt(n):.1f}"


def tables(runs: list[dict], candidates: dict | None = None) -> dict[str, str]:
    """README's tables (markdown) from the records, by marker name (`candidates`: the DPO settings
    tried on the validation world, for docs/tiny-world.md)."""
    twist = [r for r in runs if r["init"] == "twist"]
    out = {}
    if candidates:
        names = ["ssc", "tsc", "sblimp", "preference_heldout"]
        lines = ["| DPO setting | " + " | ".join(BENCHMARK_NAMES[n] for n in names) + " |", "|---" * (len(names) + 1) + "|"]
        lines += [f"| {c['setting']} | " + " | ".join(_change(c["dpo_change"].get(n)) for n in names) + " |"
                  for c in candidates["candidates"]]
        out["dpo_candidates"] = "\n".join(lines)
    lines = ["| run | sBLIMP-style | sStoryCloze-style | tStoryCloze-style | held-out pairs | minutes | tokens/s | machine |",
             "|---|---|---|---|---|---|---|---|"]
    for r in twist:
        p = r["preference_heldout"] or {}
        cells = [_arrow(r["benchmarks_before_dpo"][k], r["benchmarks"][k]) for k in ("sblimp", "ssc", "tsc")]
        cells.append(_arrow(p["before_dpo"], p["after_dpo"]) if p else "")
        tps = f"{r['tokens_per_second']:,.0f}" if r.get("tokens_per_second") else ""
        lines.append(f"| {r['label']} | {' | '.join(cells)} | {r['total_seconds'] / 60:.1f} | {tps} | {r['machine']} |")
    out["seeds"] = "\n".join(lines)

    names = ["preference_heldout", "ssc", "tsc", "sblimp"]
    lines = ["| run | " + " | ".join(BENCHMARK_NAMES[n] for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for r in twist:
        lines.append(f"| {r['label']} | " + " | ".join(_change(r["dpo_change"].get(n)) for n in names) + " |")
    by_seed = list({r["seed"]: r for r in reversed(twist)}.values())[::-1]  # the first run of each seed
    if len(by_seed) > 1:  # a seed run again gives the same numbers on the same machine: counted once
        means = [_mean_interval([r["dpo_change"][n]["change"] for r in by_seed if n in r["dpo_change"]])
                 for n in names]
        lines.append(f"| mean of {len(by_seed)} seeds | " + " | ".join(means) + " |")
    out["dpo"] = "\n".join(lines)

    random = {r["seed"]: r for r in runs if r["init"] == "random"}
    lines = ["| seed | init | sBLIMP-style | sStoryCloze-style | tStoryCloze-style | held-out pairs |",
             "|---|---|---|---|---|---|"]
    for r in by_seed:
        if r["seed"] in random:
            for row in (r, random.pop(r["seed"])):
                b, p = row["benchmarks_before_dpo"], row["preference_heldout"] or {}
                lines.append(f"| {row['seed']} | {row['init']} | {b['sblimp']:.1f} | {b['ssc']:.1f} | {b['tsc']:.1f} "
                             f"| {p.get('before_dpo', float('nan')):.1f} |")
    out["init"] = "\n".join(lines)

    lines = ["| model | hardware | sBLIMP | sSC | tSC |", "|---|---|---|---|---|",
             "| Slam (−DPO), paper | 1×A5000, 24 h | 56.45 | 55.59 | 78.01 |",
             "| Slam, paper | 1×A5000, 24 h | 58.86 | 58.04 | 82.04 |"]
    if twist:
        r = twist[0]
        hardware = f"`tiny`, {r['machine'].split(',')[0]}, {r['total_seconds'] / 60:.1f} min"
        for name, numbers in (("pretrained", r["benchmarks_before_dpo"]), ("after DPO", r["benchmarks"])):
            lines.append(f"| {name} ({r['label']}) | {hardware} | "
                         + " | ".join(f"{numbers[k]:.1f}*" for k in ("sblimp", "ssc", "tsc")) + " |")
    out["headline"] = "\n".join(lines)

    notebooks = list(twist[0]["seconds"]) if twist else []
    lines = ["| run | " + " | ".join(n.split("_")[0] for n in notebooks) + " | total |",
             "|---" * (len(notebooks) + 2) + "|"]
    for r in twist:
        lines.append(f"| {r['label']} | " + " | ".join(f"{r['seconds'].get(n, float('nan')):.0f}" for n in notebooks)
                     + f" | {r['total_seconds']:.0f} |")
    out["times"] = "\n".join(lines)
    return out


_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def _span(values: list[float], sep: str = "–", digits: int = 0) -> str:
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return low if low == high else f"{low}{sep}{high}"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def facts(runs: list[dict], suite: dict | None = None) -> dict[str, str]:
    """The numbers README's prose quotes, by name, made from the records; each sits between
    `<!-- r:NAME -->` and `<!-- /r -->`. Settings are quoted the same way from the profiles
    (`<!-- r:tiny.train.max_steps -->`) and the paper's numbers from its model card (`paper.*`)."""
    twist = [r for r in runs if r["init"] == "twist"]
    by_seed = list({r["seed"]: r for r in reversed(twist)}.values())[::-1]  # the first run of each seed
    out: dict[str, str] = {}
    if suite:
        out["suite.minutes"] = f"{suite['seconds'] / 60:.1f}"
        out["suite.machine"] = suite["machine"]
    if by_seed:
        first = twist[0]
        pairs = first["preference_heldout"]
        out["seed0.pairs"] = _arrow(pairs["before_dpo"], pairs["after_dpo"])
        out["seeds"] = _WORDS.get(len(by_seed), str(len(by_seed)))
        out["minutes"] = _span([r["total_seconds"] / 60 for r in twist], " to ", 1)
        speeds = [r["tokens_per_second"] for r in twist if r.get("tokens_per_second")]
        out["tokens_per_second"] = " to ".join(f"{round(v, -2):,.0f}" for v in (min(speeds), max(speeds)))
        out["interval95"] = f"{_mean([v for r in by_seed for v in r['intervals95'].values()]):.1f}"
        out["grammar"] = _span([r["benchmarks_before_dpo"]["sblimp"] for r in by_seed])
        out["stories"] = _span([r["benchmarks_before_dpo"][k] for r in by_seed for k in ("ssc", "tsc")])
        gains = [r["dpo_change"]["preference_heldout"]["change"] for r in by_seed if "preference_heldout" in r["dpo_change"]]
        out["dpo.pairs"] = _span(gains)
        story = [r["dpo_change"][k]["change"] for r in by_seed for k in ("ssc", "tsc") if k in r["dpo_change"]]
        out["dpo.stories"] = (f"fall by {_span([-c for c in story], ' to ', 1)} points" if max(story) < 0 else
                              f"rise by {_span(story, ' to ', 1)} points" if min(story) > 0 else
                              f"move by {min(story):+.1f} to {max(story):+.1f} points")
        for k in ("ssc", "tsc", "sblimp"):
            out[f"dpo.{k}.mean"] = f"{_mean([r['dpo_change'][k]['change'] for r in by_seed]):+.1f}"
    random = {r["seed"]: r for r in runs if r["init"] == "random"}
    both = [(r, random[r["seed"]]) for r in by_seed if r["seed"] in random]
    if both:
        out["init.seeds"] = _WORDS.get(len(both), str(len(both)))
        for k in ("sblimp", "ssc", "tsc"):
            tw, rn = (_mean([pair[i]["benchmarks_before_dpo"][k] for pair in both]) for i in (0, 1))
            out[f"init.{k}"] = f"{tw:.1f} for TWIST against {rn:.1f} for random"
    return out


def _setting(name: str) -> str | None:
    """`tiny.train.lr` -> "5e-3": a profile's setting as README quotes it; `paper.ssc` and
    `paper.dpo.ssc` -> the model card's Slam without and with DPO."""
    from slamlib.profiles import PROFILES
    from slamlib.report import PAPER_ROWS

    head, _, rest = name.partition(".")
    if head == "paper":
        row = PAPER_ROWS[1] if rest.startswith("dpo.") else PAPER_ROWS[0]
        value = row.get(rest.removeprefix("dpo."))
        return None if value is None else f"{value:.1f}"
    if head not in PROFILES:
        return None
    value = PROFILES[head]
    for part in rest.split("."):
        value = getattr(value, part, None)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if 0 < abs(value) < 0.01:
            mantissa, exponent = f"{value:.1e}".split("e")
            return f"{mantissa.removesuffix('.0')}e{int(exponent)}"
        return f"{value:g}"
    return str(value)


def render(readme_text: str, runs: list[dict], where: str = "README", suite: dict | None = None,
           candidates: dict | None = None) -> str:
    """README (or a doc) with every marked table and number replaced by the one made from the
    records and settings."""
    made, quoted = tables(runs, candidates), facts(runs, suite)

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in made:
            raise ValueError(f"{where} has a results marker {name!r}; the tables are {sorted(made)}")
        return f"<!-- results:{name} -->\n{made[name]}\n<!-- /results:{name} -->"

    def number(match: re.Match) -> str:
        name = match.group(1)
        value = quoted.get(name) or _setting(name)
        if value is None:
            raise ValueError(f"{where} quotes {name!r}, which is neither a result ({sorted(quoted)}) "
                             "nor a profile's setting (tiny.train.lr) nor the paper's (paper.ssc, paper.dpo.ssc)")
        return f"<!-- r:{name} -->{value}<!-- /r -->"

    text = re.sub(r"<!-- results:(\w+) -->.*?<!-- /results:\1 -->", replace, readme_text, flags=re.S)
    return re.sub(r"<!-- r:([\w.]+) -->(.*?)<!-- /r -->", number, text, flags=re.S)


def update_readme(readme: str | os.PathLike = README, path: str | os.PathLike = RESULTS_FILE,
                  check: bool = False) -> bool:
    """Rewrite README's tables and quoted numbers from the results file; with `check`, only say
    whether they are current."""
    readme = Path(readme)
    text = readme.read_text()
    data = _load_file(path)
    new = render(text, data["runs"], where=str(readme), suite=data.get("suite"), candidates=data.get("dpo_candidates"))
    if check:
        return new == text
    if new != text:
        readme.write_text(new)
    return True


def update_docs(docs: list[str | os.PathLike] | None = None, path: str | os.PathLike = RESULTS_FILE,
                check: bool = False) -> list[Path]:
    """README, every page of docs/ and the notebooks' text with their quoted numbers made again;
    returns the files that were (with `check`: that would be) changed."""
    docs = [Path(d) for d in docs] if docs is not None else [
        README, *sorted((REPO_ROOT / "docs").glob("*.md")), *sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))]
    stale = [doc for doc in docs if not update_readme(doc, path, check=True)]
    if not check:
        for doc in stale:
            update_readme(doc, path)
    return stale
