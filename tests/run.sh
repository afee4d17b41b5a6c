#!/usr/bin/env bash
# The test command (README): a fresh venv, lexfast installed from this tree
# with the compiled core required, then the whole suite on the compiled core
# and again on the pure-Python twin. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { echo "[run.sh +$(( $(date +%s) - start ))s] $*"; }
venv=$(realpath -m "${LEXFAST_TEST_VENV:-.venv-test}")
extras=${LEXFAST_TEST_EXTRAS:-test}
step "creating the test venv $venv"
python3 -m venv --clear "$venv"
step "upgrading pip"
"$venv/bin/python" -m pip install -qq --upgrade pip
step "installing lexfast[$extras] from this tree, compiling the Cython modules (about a minute)"
LEXFAST_REQUIRE_EXTENSIONS=1 "$venv/bin/python" -m pip install -qq ".[$extras]"
step "installed"
# Run the installed package: importlib mode (pyproject) keeps the source tree
# off sys.path, and the check below proves which build the tests import.
(cd / && "$venv/bin/python" -c '
import os, sys, lexfast
assert lexfast.COMPILED, "the compiled core did not load"
from lexfast.kernel import _c
assert lexfast.Variant is _c.Variant, "lexfast.Variant is not the compiled kernel Variant"
source = os.path.join(os.path.realpath(sys.argv[1]), "lexfast")
assert os.path.dirname(os.path.realpath(lexfast.__file__)) != source, lexfast.__file__
print(f"testing lexfast {lexfast.__version__} from {os.path.dirname(lexfast.__file__)}")
' "$OLDPWD")
step "== compiled core =="
LEXFAST_REQUIRE_EXTENSIONS=1 "$venv/bin/pytest" -q "$@"
step "== pure-Python twin (LEXFAST_NO_EXTENSIONS=1) =="
LEXFAST_NO_EXTENSIONS=1 "$venv/bin/pytest" -q "$@"
step "done"
