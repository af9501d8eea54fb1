# Sourced by the scripts that run a Python reference beside lrs (never by the product or CI's
# test command): one place that makes the venv they run in.
#
# ensure_venv NAME "IMPORTS" PACKAGE...: sets VENV (unless already set) to
# ${XDG_CACHE_HOME:-~/.cache}/lrs/venv-NAME and, unless its python can already run
# `import IMPORTS`, creates it with $PYTHON (default python3) and pip-installs the PACKAGEs
# from PyPI into it. Afterwards "$VENV/bin/python" is the interpreter to use.
ensure_venv() {
  local name=$1 imports=$2
  shift 2
  VENV="${VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lrs/venv-$name}"
  if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import $imports" 2>/dev/null; then
    "${PYTHON:-python3}" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet "$@"
  fi
}
