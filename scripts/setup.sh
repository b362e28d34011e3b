# Sourced by scripts/test.sh and scripts/demo.sh: a venv with eda_gateway installed.
# Installs only what is missing; the JupyterLab extension's npm install and build run
# beside the Python installs (they are independent), and are skipped when up to date.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Node builds the JupyterLab extension; Debian's chromium runs the browser tests (Playwright's
# own browser downloads are never used); bubblewrap is one of the kernel isolation layers
# (docs/isolation.md); e2fsprogs (mkfs.ext4/e2fsck/resize2fs) makes the per-user disk
# volumes (docs/sandbox.md, Disk). One apt-get run for whatever of these is missing.
eda_apt=""
command -v node >/dev/null 2>&1 || eda_apt="$eda_apt nodejs"
command -v npm >/dev/null 2>&1 || eda_apt="$eda_apt npm"
[ -x /usr/bin/chromium ] || eda_apt="$eda_apt chromium"
command -v bwrap >/dev/null 2>&1 || eda_apt="$eda_apt bubblewrap"
command -v mkfs.ext4 >/dev/null 2>&1 || eda_apt="$eda_apt e2fsprogs"
# Redis (the shared admission store), PostgreSQL (the shared history), HAProxy: docs/scaling.md
command -v redis-server >/dev/null 2>&1 || eda_apt="$eda_apt redis-server"
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || eda_apt="$eda_apt postgresql"
command -v haproxy >/dev/null 2>&1 || eda_apt="$eda_apt haproxy"  # examples/load_balancer/
if [ -n "$eda_apt" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # shellcheck disable=SC2086  # a list of package names
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $eda_apt) >/dev/null \
    || echo "setup.sh: could not install$eda_apt" >&2
fi
# uv (PyPI) installs in seconds what pip resolves in minutes; pip stays the fallback.
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet uv 2>/dev/null || true
fi
eda_pip_install() {
  if [ -x .venv/bin/uv ]; then
    # compiled as pip does: kernels see the venv read-only (isolation), and compiling pandas
    # at every kernel start costs seconds of CPU that the sandbox's clock counts
    .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python \
      --override scripts/uv-overrides.txt "$@"
  else
    .venv/bin/python -m pip install --quiet "$@"
  fi
}
# The extension (labextension/ -> eda_gateway/labextension/) is built here, not by the
# editable install's build hook (SKIP_JUPYTER_BUILDER below): that hook rebuilt it on
# every run. Rebuilt when a source is newer than the build; `jlpm` comes from jupyter-builder.
eda_lab_built=eda_gateway/labextension/static/style.js
eda_lab_stale() {
  [ ! -f "$eda_lab_built" ] || [ ! -d labextension/node_modules ] \
    || [ -n "$(find labextension/src labextension/style labextension/schema labextension/package.json \
                    labextension/yarn.lock labextension/tsconfig.json -newer "$eda_lab_built" -print -quit)" ]
}
eda_lab_pid=""
if eda_lab_stale; then
  [ -x .venv/bin/jlpm ] || eda_pip_install "jupyter-builder>=1.2,<2"
  (
    cd labextension
    log=$(mktemp)
    if ! { PATH="$PWD/../.venv/bin:$PATH" jlpm install && PATH="$PWD/../.venv/bin:$PATH" jlpm build; } >"$log" 2>&1; then
      tail -40 "$log" >&2; rm -f "$log"; exit 1
    fi
    rm -f "$log"
  ) &
  eda_lab_pid=$!
fi
# The dependencies meanwhile; eda_gateway itself once the build is there (hatch copies it
# into share/jupyter/labextensions/).
if [ -x .venv/bin/uv ]; then
  eda_pip_install -r pyproject.toml --extra test
fi
if [ -n "$eda_lab_pid" ]; then
  wait "$eda_lab_pid" || { echo "setup.sh: building the JupyterLab extension failed" >&2; false; }
fi
SKIP_JUPYTER_BUILDER=1 eda_pip_install -e ".[test]"
# a venv made before scripts/uv-overrides.txt still has what it leaves out
if [ -x .venv/bin/uv ] && .venv/bin/python -c "import rfc3987_syntax" 2>/dev/null; then
  .venv/bin/uv pip uninstall --quiet --python .venv/bin/python rfc3987-syntax
fi
# JupyterHub's proxy (npm) for examples/jupyterhub/ and its tests, kept inside the venv
if [ ! -x .venv/node/node_modules/.bin/configurable-http-proxy ]; then
  npm install --silent --prefix .venv/node --no-audit --no-fund configurable-http-proxy@4 >/dev/null \
    || echo "setup.sh: could not install configurable-http-proxy (npm)" >&2
fi
unset eda_apt eda_lab_built eda_lab_pid
unset -f eda_pip_install eda_lab_stale
