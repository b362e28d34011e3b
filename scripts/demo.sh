#!/usr/bin/env bash
# Install eda_gateway (with its JupyterLab extension) and start JupyterLab with
# the demo configuration (jupyter_config.py): users alice and bob, admin "admin".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

DEMO=$PWD/.demo
mkdir -p "$DEMO/notebooks" "$DEMO/data" "$DEMO/state"
# A small dataset for the REST execution API and the EDA Runner panel.
if [ ! -f "$DEMO/data/sales.csv" ]; then
  .venv/bin/python - "$DEMO/data/sales.csv" <<'PY'
import csv, datetime, random, sys
random.seed(7)
with open(sys.argv[1], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["date", "region", "units", "revenue"])
    day = datetime.date(2024, 1, 1)
    for i in range(366):
        for region in ("north", "south", "east", "west"):
            units = random.randint(5, 120)
            w.writerow([day + datetime.timedelta(days=i), region, units, round(units * random.uniform(8, 12), 2)])
PY
fi

# JupyterLab defaults of a managed deployment (jupyter_config.py points LabApp.app_settings_dir here)
mkdir -p "$DEMO/state/lab-app-settings"
cat > "$DEMO/state/lab-app-settings/overrides.json" <<'JSON'
{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}
JSON

PORT=${EDA_DEMO_PORT:-8888}
cat <<MSG

  eda_gateway demo on http://127.0.0.1:$PORT
  Log in as (paste the token on the login page, or open the link):
    alice  http://127.0.0.1:$PORT/lab?token=alice-demo-token
    bob    http://127.0.0.1:$PORT/lab?token=bob-demo-token-0
    admin  http://127.0.0.1:$PORT/lab?token=admin-demo-token
  Use one browser profile (or a private window) per user. Stop with Ctrl+C.

MSG
ROOT_FLAG=()
[ "$(id -u)" = 0 ] && ROOT_FLAG=(--allow-root)
export EDA_DEMO_ROOT="$DEMO/notebooks" EDA_DEMO_DATA="$DEMO/data" EDA_DEMO_STATE="$DEMO/state"
# workspaces (jupyter_config.py), history, disk images, notaries, kernel connection files: the
# demo's own, never those of another server on this host
export JUPYTER_DATA_DIR="$DEMO/state/data" JUPYTER_RUNTIME_DIR="$DEMO/state/runtime"
exec .venv/bin/jupyter lab --config=jupyter_config.py --ServerApp.ip=127.0.0.1 \
  --ServerApp.port="$PORT" --no-browser "${ROOT_FLAG[@]}"
