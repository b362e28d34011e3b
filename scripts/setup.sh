# Sourced by scripts/test.sh and scripts/demo.sh: a venv with eda_gateway installed.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Node builds the JupyterLab extension during `pip install`; Debian's chromium runs the
# browser tests (Playwright's own browser downloads are never used).
eda_apt=""
command -v node >/dev/null 2>&1 || eda_apt="$eda_apt nodejs"
[ -x /usr/bin/chromium ] || eda_apt="$eda_apt chromium"
if [ -n "$eda_apt" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # shellcheck disable=SC2086  # a list of package names
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $eda_apt) >/dev/null \
    || echo "setup.sh: could not install$eda_apt" >&2
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
# bubblewrap: one of the kernel isolation layers (docs/isolation.md); Debian/Ubuntu hosts
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null || echo "setup.sh: could not install bubblewrap" >&2
fi
# e2fsprogs: mkfs.ext4/e2fsck/resize2fs for the per-user disk volumes (docs/sandbox.md, Disk)
if ! command -v mkfs.ext4 >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq e2fsprogs) >/dev/null || echo "setup.sh: could not install e2fsprogs" >&2
fi
