"""Validate .github/workflows/wheels.yml without a GitHub runner: for each
matrix row, ``cibuildwheel --print-build-identifiers`` with the row's
platform, archs and build selector must list at least one identifier, each
for that platform and arch, and together the rows must cover every
supported CPython (pyproject's classifiers) on manylinux and musllinux
x86_64/aarch64 and macOS x86_64/arm64. Run by .ci/run (issue 20).

usage: python .ci/check_wheel_matrix.py CIBUILDWHEEL_EXE
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import yaml

try:
    import tomllib
except ImportError:  # 3.10
    import tomli as tomllib

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(exe: str) -> int:
    with open(os.path.join(HERE, ".github", "workflows", "wheels.yml")) as f:
        workflow = yaml.safe_load(f)
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        classifiers = tomllib.load(f)["project"]["classifiers"]
    minors = sorted(m.group(1).replace(".", "") for c in classifiers
                    if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c)))
    rows = workflow["jobs"]["wheels"]["strategy"]["matrix"]["include"]
    seen: set[str] = set()
    failed = False
    for row in rows:
        env = dict(os.environ, CIBW_ARCHS=row["archs"], CIBW_BUILD=row["build"])
        env.pop("CIBW_SKIP", None)
        r = subprocess.run([exe, "--print-build-identifiers", "--platform", row["platform"], HERE],
                           env=env, capture_output=True, text=True, timeout=120)
        ids = r.stdout.split()
        bad = [i for i in ids if not i.endswith(row["archs"])
               or ("macosx" in i) != (row["platform"] == "macos")]
        status = "ok" if r.returncode == 0 and ids and not bad else "FAILED"
        print(f"{row['name']:20} {status}: {' '.join(ids) or r.stderr.strip()[-300:]}")
        failed |= status != "ok"
        seen.update(ids)
    want = {f"cp{m}-{plat}_{arch}" for m in minors
            for plat, arch in [("manylinux", "x86_64"), ("manylinux", "aarch64"),
                               ("musllinux", "x86_64"), ("musllinux", "aarch64"),
                               ("macosx", "x86_64"), ("macosx", "arm64")]}
    have = {re.sub(r"^(cp\d+)-(manylinux|musllinux|macosx)_.*?(x86_64|aarch64|arm64)$", r"\1-\2_\3", i)
            for i in seen}
    missing = sorted(want - have)
    if missing:
        print("the matrix misses: " + ", ".join(missing))
        failed = True
    print(f"{len(seen)} identifiers over {len(rows)} jobs; CPython {', '.join(minors)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
