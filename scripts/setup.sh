# Sourced by scripts/test.sh and scripts/demo.sh: a venv with eda_gateway installed.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
