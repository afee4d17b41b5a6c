"""Check the in-run ratios each benchmark module declares (``RATIO_TARGETS``)
against a pytest-benchmark JSON file, and print them as a Markdown table.

    python bench/check_ratios.py bench.json [--slack 0.25] [--markdown]

A target is ``(group, subject, baseline, max_ratio)`` or, to compare costs
over a common floor, ``(group, subject, baseline, max_ratio, floor)``: then
the ratio is ``(subject - floor) / (baseline - floor)``. Medians throughout.
``DIFF_TARGETS`` entries ``(group, subject, baseline, max_ns)`` bound the
extra nanoseconds per call instead. Exits 1 when a target is missed by more
than the slack (default 25%).
Targets whose benchmarks are absent from the file are reported, not failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent


#: bench modules that could not be imported (so their targets went unchecked)
UNIMPORTABLE: list[str] = []


def load_targets() -> list[tuple]:
    targets = []
    UNIMPORTABLE.clear()
    for path in sorted(HERE.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception as e:  # its targets cannot be checked: main() fails on this
            print(f"error: {path.name} not imported ({type(e).__name__}: {e})", file=sys.stderr)
            UNIMPORTABLE.append(path.name)
            continue
        for t in getattr(mod, "RATIO_TARGETS", []):
            targets.append((path.name, "ratio") + tuple(t))
        for t in getattr(mod, "DIFF_TARGETS", []):
            targets.append((path.name, "diff") + tuple(t))
    return targets


def medians_of(data: dict) -> dict:
    """``{(group, name): median}``, plus ``("*", name)`` for targets naming no group."""
    medians = {}
    for b in data.get("benchmarks", []):
        medians[(b["group"], b["name"])] = b["stats"]["median"]
        medians.setdefault(("*", b["name"]), b["stats"]["median"])
    return medians


def evaluate(data: dict, slack: float = 0.25) -> list[dict]:
    """Every declared target against a pytest-benchmark JSON document.

    Each row: module, how ("ratio" or "diff"), group, subject, baseline,
    floor, limit, value (None when not run), label, want, status, ok.
    """
    medians = medians_of(data)

    def med(group, name):
        return medians.get((group, name), medians.get(("*", name)))

    rows = []
    for target in load_targets():
        module, how, group, subject, baseline, limit = target[:6]
        floor = target[6] if len(target) > 6 else None
        row = dict(module=module, how=how, group=group, subject=subject, baseline=baseline,
                   floor=floor, limit=limit, value=None, label="—", ok=True, status="not run",
                   want=f"≤ {limit:g}" + (" ns extra" if how == "diff" else ""))
        rows.append(row)
        s, b = med(group, subject), med(group, baseline)
        f = med(group, floor) if floor else 0.0
        if s is None or b is None or (floor and f is None):
            continue
        if how == "diff":
            value = (s - b) * 1e9
            label = f"{value:+.1f} ns"
        else:
            value = (s - f) / (b - f) if b - f > 0 else float("inf")
            label = f"{value:.3f}" + (" (over floor)" if floor else "")
        ok = value <= limit * (1 + slack)
        status = "ok" if value <= limit else ("ok (within slack)" if ok else "MISSED")
        row.update(value=value, label=label, ok=ok, status=status)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| group | lexfast | against | measured | target | |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['group']} | `{r['subject']}` | `{r['baseline']}` | {r['label']} | {r['want']} "
              f"| {r['status']} |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json_file")
    ap.add_argument("--slack", type=float, default=0.25)
    ap.add_argument("--markdown", action="store_true", help="print only the Markdown table")
    ns = ap.parse_args(argv)
    data = json.loads(pathlib.Path(ns.json_file).read_text())
    rows = evaluate(data, ns.slack)
    failed = sum(not r["ok"] for r in rows)
    missing = sum(r["value"] is None for r in rows)
    print(markdown(rows))
    if not ns.markdown:
        print(f"\n{len(rows) - missing} ratios checked, {failed} missed by more than "
              f"{ns.slack:.0%}, {missing} not run")
    if UNIMPORTABLE:
        print(f"{len(UNIMPORTABLE)} bench module(s) could not be imported: "
              f"{', '.join(UNIMPORTABLE)}", file=sys.stderr)
    return 1 if failed or UNIMPORTABLE else 0


if __name__ == "__main__":
    sys.exit(main())
