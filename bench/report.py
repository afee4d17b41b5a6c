"""Turn one pytest-benchmark JSON run into ``bench/RESULTS.md`` and a bar
chart of the ratios, ``bench/results.png``.

    python bench/report.py RESULT.json [--out-dir bench] [--note TEXT]

Per group: every benchmark's median, and the lexfast subject's median over
it (below 1: lexfast takes less time). Then the targets the bench modules
declare, judged by ``check_ratios`` (imported: one definition of a target),
and the machine. matplotlib is needed only for the chart; without it the
Markdown is still written and the chart is reported missing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import check_ratios  # noqa: E402

# The benchmark in a group that stands for lexfast when no target names one.
_LEXFAST = re.compile(r"\[compiled[\]-]|_handler\b|lexfast|_cached\b")


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_ratio(r: float) -> str:
    if r == 0 or math.isinf(r):
        return "—"
    return f"{r:.3g}×" if r >= 0.01 else f"1/{1 / r:,.0f}"


def groups_of(data: dict) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for b in data.get("benchmarks", []):
        groups.setdefault(b["group"] or "(no group)", []).append(b)
    return groups


def subject_of(group: str, benches: list[dict], targets: list[dict]) -> str:
    names = [b["name"] for b in benches]
    for t in targets:
        if t["group"] == group and t["subject"] in names:
            return t["subject"]
    for n in names:
        if _LEXFAST.search(n):
            return n
    return names[0]


def chart_pairs(group, benches, subject, targets):
    """(baseline, ratio, target-or-None, label) bars for the chart: the subject
    against each thing a user would otherwise use, the pure-Python twin, and
    every declared baseline (a target over a floor gets its own bar)."""
    med = {b["name"]: b["stats"]["median"] for b in benches}
    declared = {t["baseline"]: t for t in targets
                if t["group"] == group and t["subject"] == subject and t["how"] == "ratio"}
    bars = []
    for name in med:
        if name == subject:
            continue
        t = declared.get(name)
        other_lexfast = _LEXFAST.search(name) or re.search(r"\[twin-", name)
        if other_lexfast and t is None and not any(
                d["baseline"] == name for d in targets if d["group"] == group):
            continue
        if t is not None and t["floor"]:
            bars.append((name, med[subject] / med[name], None, short(name, subject)))
            if t["value"] is not None:
                bars.append((name, t["value"], t["limit"],
                             f"{short(name, subject)} (cost over {short(t['floor'], subject)})"))
            continue
        bars.append((name, med[subject] / med[name], t["limit"] if t else None, short(name, subject)))
    return bars


def short(name: str, subject: str) -> str:
    """What sets ``name`` apart from the subject: the parameter when both are
    one parametrised test, else the test name minus the words they share."""
    base, _, param = name.partition("[")
    s_base, _, _ = subject.partition("[")
    if base == s_base and param:
        return param.rstrip("]")
    words, s_words = base.removeprefix("test_").split("_"), s_base.removeprefix("test_").split("_")
    while len(words) > 1 and s_words and words[0] == s_words[0]:
        words, s_words = words[1:], s_words[1:]
    return "_".join(words)


def lscpu() -> dict[str, str]:
    if not shutil.which("lscpu"):
        return {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                             env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def machine_lines(data: dict) -> list[str]:
    mi = data.get("machine_info", {})
    cpu = mi.get("cpu", {})
    lines = [
        f"- CPU: {cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} logical CPUs, "
        f"{cpu.get('hz_actual_friendly', '?')} ({mi.get('machine', '?')})",
        f"- OS: {mi.get('system', '?')} {mi.get('release', '?')}",
        f"- Python: {mi.get('python_implementation', '?')} {mi.get('python_version', '?')} "
        f"({mi.get('python_compiler', '?')})",
        f"- pytest-benchmark {data.get('version', '?')}; run at {data.get('datetime', '?')}",
    ]
    ci = data.get("commit_info") or {}
    if ci.get("id"):
        lines.append(f"- commit {ci['id'][:12]}" + (" (with uncommitted changes)" if ci.get("dirty") else ""))
    if mi.get("node") == platform.node():  # lscpu describes this machine only
        cpu_info = lscpu()
        keep = ["Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket",
                "Hypervisor vendor", "Virtualization type", "L2 cache", "L3 cache"]
        found = [f"{k}: {cpu_info[k]}" for k in keep if k in cpu_info]
        if found:
            lines.append("- lscpu: " + "; ".join(found))
        lines.append(f"- platform: {platform.platform()}")
    return lines


def extra_note(b: dict) -> str:
    e = b.get("extra_info") or {}
    parts = []
    if "rps" in e:
        parts.append(f"{e['rps']:,.0f} req/s")
    for k in ("p50_ms", "p99_ms"):
        if k in e:
            parts.append(f"{k[:3]} {e[k]:g} ms")
    if e.get("errors"):
        parts.append(f"{e['errors']} errors")
    return ", ".join(parts)


_SCALING = {
    "scale-table": ("extra table rows", "dispatch of a no-op effect (`lexfast-one-op`: one op "
                    "repeated; `lexfast-all-ops`: every added op in turn) against calling it"),
    "scale-kv": ("keys in the store", "`kv.get` of 1000 keys in turn against raw lmdb's own "
                 "store of the same size"),
    "scale-threads": ("threads", "wall time per dispatch with every thread dispatching on its "
                      "own fork at once, against the same threads calling the function"),
}


def scaling_lines(groups: dict) -> list[str]:
    """One table per ``scale-<what>-<n>`` family: a row per ``n``, a column
    per subject (medians), and the lexfast subjects over the baseline."""
    out: list[str] = []
    for prefix, (axis, what) in _SCALING.items():
        rows = {}
        for group, benches in groups.items():
            m = re.fullmatch(re.escape(prefix) + r"-(\d+)", group)
            if m:
                n = int(m.group(1))
                rows[n] = {b["name"].partition("[")[2].rstrip("]").removesuffix(f"-{n}"):
                           b["stats"]["median"] for b in benches}
        if not rows:
            continue
        names = sorted({k for r in rows.values() for k in r}, key=lambda k: (not k.startswith("lexfast"), k))
        lexfast = [k for k in names if k.startswith("lexfast")]
        base = [k for k in names if not k.startswith("lexfast")]
        out += [f"### {prefix}: by {axis}", "", what + ".", "",
                "| " + axis + " | " + " | ".join(f"`{k}`" for k in names) + " | "
                + " | ".join(f"{k} ÷ {b}" for k in lexfast for b in base) + " |",
                "|---:|" + "---:|" * (len(names) + len(lexfast) * len(base))]
        for n in sorted(rows):
            r = rows[n]
            cells = [fmt_time(r[k]) if k in r else "—" for k in names]
            ratios = [fmt_ratio(r[k] / r[b]) if k in r and b in r else "—" for k in lexfast for b in base]
            out.append(f"| {n:,} | " + " | ".join(cells + ratios) + " |")
        out.append("")
    return out


def write_markdown(data, groups, subjects, checks, chart_note, note) -> str:
    out = ["# Benchmark results", "",
           "Generated by `python bench/report.py` from one pytest-benchmark run of the whole",
           "`bench/` directory. Times are medians per call; where a module uses the",
           "`interleaved` fixture (bench_core, bench_builtins, bench_scaling), per statement",
           "of a statement loop timed interleaved with its group (bench/README.md, \"Method\").",
           "**lexfast ÷ this** is the lexfast subject's median over the row's median: below 1,",
           "lexfast takes less time.", ""]
    if note:
        out += [f"> {note}", ""]
    out += ["![lexfast time ratios](results.png)", ""] if chart_note is None else [f"_{chart_note}_", ""]
    out += ["## Targets", "",
            "The ratios the issues named (`RATIO_TARGETS` / `DIFF_TARGETS` in each `bench_*.py`),",
            "judged as CI judges them (`bench/check_ratios.py`, 25% slack for noise):", "",
            check_ratios.markdown(checks), ""]
    if not checks:
        out += ["_No targets loaded: the bench modules did not import (is lexfast importable?)._", ""]
    failed = [c for c in checks if not c["ok"]]
    if failed:
        out += ["Missed by more than the slack on this run: "
                + ", ".join(f"`{c['group']}` ({c['label']} against ≤ {c['limit']:g})" for c in failed)
                + ".", ""]
    scaling = scaling_lines(groups)
    if scaling:
        out += ["## Scaling", ""] + scaling
    out += ["## Groups", ""]
    for group, benches in groups.items():
        if group.startswith("scale-"):
            continue
        subject = subjects[group]
        s_med = next(b["stats"]["median"] for b in benches if b["name"] == subject)
        out += [f"### {group}", "", f"lexfast: `{subject}`", "",
                "| benchmark | median | IQR | rounds | lexfast ÷ this | |",
                "|---|---:|---:|---:|---:|---|"]
        for b in sorted(benches, key=lambda b: b["stats"]["median"]):
            st = b["stats"]
            ratio = "(subject)" if b["name"] == subject else fmt_ratio(s_med / st["median"])
            out.append(f"| `{b['name']}` | {fmt_time(st['median'])} | {fmt_time(st['iqr'])} "
                       f"| {st['rounds']} | {ratio} | {extra_note(b)} |")
        out.append("")
    out += ["## Machine", ""] + machine_lines(data) + [""]
    return "\n".join(out)


def write_chart(path: pathlib.Path, bars_by_group, title: str) -> str | None:
    """The chart, or why there is none."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart (pip install matplotlib, or lexfast[bench])"
    rows = [(g, label, ratio, target) for g, bars in bars_by_group.items()
            for _, ratio, target, label in bars if ratio > 0 and not math.isinf(ratio)]
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.6))
    ys = list(range(len(rows)))[::-1]
    colors = ["#2a9d8f" if r <= 1 else "#e76f51" for _, _, r, _ in rows]
    # Bars grow from parity (1): leftwards where lexfast is faster.
    ax.barh(ys, [r - 1 for _, _, r, _ in rows], left=1, color=colors, height=0.7)
    ax.set_xscale("log")
    for y, (_, _, r, t) in zip(ys, rows, strict=True):
        ax.text(r, y, f" {fmt_ratio(r)} ", va="center", fontsize=7, ha="left" if r >= 1 else "right")
        if t is not None:
            ax.plot([t, t], [y - 0.45, y + 0.45], color="black", linewidth=2)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{g}: vs {label}" for g, label, _, _ in rows], fontsize=7)
    ax.set_xlabel("lexfast median time ÷ alternative's (log scale; left of 1 = lexfast faster; "
                  "black tick = target)", fontsize=8)
    ax.set_title(title, fontsize=9)
    lo = min(r for _, _, r, _ in rows)
    hi = max(max(r for _, _, r, _ in rows), max((t for *_, t in rows if t), default=1))
    ax.set_xlim(lo / 6, hi * 4)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json_file")
    ap.add_argument("--out-dir", default=str(HERE))
    ap.add_argument("--slack", type=float, default=0.25)
    ap.add_argument("--note", default="", help="a line shown at the top (e.g. how loaded the machine was)")
    ns = ap.parse_args(argv)
    data = json.loads(pathlib.Path(ns.json_file).read_text())
    if not data.get("benchmarks"):
        print(f"{ns.json_file}: no benchmarks in this file", file=sys.stderr)
        return 2
    out_dir = pathlib.Path(ns.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checks = check_ratios.evaluate(data, ns.slack)
    groups = groups_of(data)
    subjects = {g: subject_of(g, benches, checks) for g, benches in groups.items()}
    bars = {g: chart_pairs(g, benches, subjects[g], checks) for g, benches in groups.items()
            if not g.startswith("scale-")}
    cpu = data.get("machine_info", {}).get("cpu", {})
    when = data.get("datetime", "")[:10] or dt.date.today().isoformat()
    title = (f"lexfast vs alternatives, medians ({cpu.get('brand_raw', '?')}, "
             f"{cpu.get('count', '?')} CPUs, Python {data.get('machine_info', {}).get('python_version', '?')}, {when})")
    chart_note = write_chart(out_dir / "results.png", bars, title)
    md = write_markdown(data, groups, subjects, checks, chart_note, ns.note)
    # The server front's section comes from `bench_serve.py run` (10 s
    # interleaved rounds, not this run): carried over from the last file.
    old = out_dir / "RESULTS.md"
    marker = "\n## Server front ("
    if old.exists() and marker in old.read_text():
        md = md.rstrip("\n") + "\n" + marker + old.read_text().split(marker, 1)[1]
    (out_dir / "RESULTS.md").write_text(md)
    print(f"wrote {out_dir / 'RESULTS.md'}" + (f"; {chart_note}" if chart_note else
                                                f" and {out_dir / 'results.png'}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
