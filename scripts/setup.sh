# Sourced by scripts/test.sh and scripts/demo.sh: a venv with eda_gateway installed.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
# bubblewrap: one of the kernel isolation layers (docs/isolation.md); Debian/Ubuntu hosts
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null || echo "setup.sh: could not install bubblewrap" >&2
fi
