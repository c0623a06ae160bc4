#!/usr/bin/env bash
# The one install of robodata: what `make setup` / `make setup-test` run on a machine and what
# deploy/docker/Dockerfile runs in the image, so that the image holds what CI tested.
#
#   deploy/install.sh apt GROUP... [--no-recommends]   Debian packages of GROUPs (runtime, test) that are missing
#                                                       (apt-get update first; sudo when not root)
#   deploy/install.sh apt GROUP... --check              exit 1 naming the packages of GROUPs that are missing
#   deploy/install.sh venv --extras EXTRAS [--venv DIR] DIR (.venv) with Python 3.12, pip, robodata[EXTRAS]
#                                                       (editable), then the stamp DIR/.installed
#
# Python 3.12: pyenv's 3.12.1 where pyenv manages it, else python3.12 on PATH (Python 3.11 will not do).
# The stamp names this script's sha256, the extras and the interpreter: tests/test_k8s_deploy.py checks that the
# venv it runs in was made by this very script.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_RUNTIME="libegl1 libegl-mesa0 libgl1"                           # headless MuJoCo rendering (EGL)
APT_TEST="chromium postgresql prometheus prometheus-pushgateway"   # the UI test and the services tests start

die() { echo "deploy/install.sh: $*" >&2; exit 2; }

apt_packages() {
  local groups=() check=0 recommends=1 pkgs="" missing="" g p
  for a in "$@"; do
    case "$a" in
      --check) check=1 ;;
      --no-recommends) recommends=0 ;;
      runtime) pkgs="$pkgs $APT_RUNTIME"; groups+=("$a") ;;
      test) pkgs="$pkgs $APT_TEST"; groups+=("$a") ;;
      *) die "apt: unknown group or flag '$a' (groups: runtime, test; flags: --check, --no-recommends)" ;;
    esac
  done
  [ ${#groups[@]} -gt 0 ] || die "apt: name a group (runtime, test)"
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -z "$missing" ]; then return 0; fi
  if [ "$check" = 1 ]; then echo "missing Debian packages:$missing" >&2; return 1; fi
  echo "installing Debian packages:$missing"
  local sudo="" opts=(-y -qq)
  [ "$(id -u)" = 0 ] || sudo=sudo
  [ "$recommends" = 1 ] || opts+=(--no-install-recommends)
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install "${opts[@]}" $missing >/dev/null
}

python312() {
  (PYENV_VERSION=3.12.1 python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null) \
    || (python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null) \
    || die "Python 3.12 not found (install python3.12 or pyenv 3.12.1)"
}

venv_install() {
  local extras="" venv=".venv"
  while [ $# -gt 0 ]; do
    case "$1" in
      --extras) extras="${2:-}"; shift 2 ;;
      --venv) venv="${2:-}"; shift 2 ;;
      *) die "venv: unknown flag '$1' (--extras EXTRAS, --venv DIR)" ;;
    esac
  done
  [ -n "$extras" ] || die "venv: --extras is required (e.g. all, or all,dev)"
  [[ "$extras" =~ ^[a-z0-9_,-]+$ ]] || die "venv: --extras '$extras' is not a comma-separated list of extras"
  local py
  if [ -x "$venv/bin/python" ]; then
    py="$venv/bin/python"
  else
    local base; base="$(python312)"
    echo "creating $venv with $base"
    "$base" -m venv "$venv"
    py="$venv/bin/python"
  fi
  "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' \
    || die "$venv is not a Python 3.12 venv (remove it and run again)"
  rm -f "$venv/.installed"
  "$py" -m pip install -q --upgrade pip 2>&1 | { grep -v "^WARNING: Location" || true; } || true  # offline: keep its pip
  "$py" -m pip install -q -e ".[$extras]" 2>&1 | { grep -v "^WARNING: Location" || true; }
  {
    echo "script=deploy/install.sh"
    echo "script_sha256=$(sha256sum deploy/install.sh | cut -d' ' -f1)"
    echo "extras=$extras"
    echo "python=$("$py" -c 'import platform; print(platform.python_version())')"
  } > "$venv/.installed"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  apt) apt_packages "$@" ;;
  venv) venv_install "$@" ;;
  *) die "usage: deploy/install.sh apt GROUP... [--check|--no-recommends] | venv --extras EXTRAS [--venv DIR]" ;;
esac
