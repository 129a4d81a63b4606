#!/bin/sh
# Ollama's entrypoint in the homelab stack: serves, and once the server answers,
# creates each model described by a Modelfile in $OLLAMA_MODELFILES (NAME.Modelfile ->
# model NAME) with num_thread set to the number of CPUs this container may run on,
# which is its cpuset: nproc counts the CPUs of the affinity mask, llama.cpp does not.
# The base model (FROM) is pulled first when it is missing.
#
# SIGTERM and SIGINT go to the server at once (models are created in the background).
# Environment: OLLAMA_BIN (default /bin/ollama), OLLAMA_MODELFILES (default
# /etc/ollama/models).
set -u
ollama=${OLLAMA_BIN:-/bin/ollama}
models=${OLLAMA_MODELFILES:-/etc/ollama/models}

say() { echo "ollama-entrypoint: $*" >&2; }

create_models() {
  threads=$(nproc)
  until "$ollama" list >/dev/null 2>&1; do sleep 1; done
  for f in "$models"/*.Modelfile; do
    [ -f "$f" ] || continue
    name=$(basename "$f" .Modelfile)
    base=$(sed -n 's/^FROM[[:space:]]\{1,\}//p' "$f" | head -n 1)
    if [ -n "$base" ] && ! "$ollama" show "$base" >/dev/null 2>&1; then
      say "pulling $base for $name"
      "$ollama" pull "$base" >/dev/null || { say "could not pull $base: $name not created"; continue; }
    fi
    modelfile=$(mktemp)
    grep -v '^PARAMETER[[:space:]]\{1,\}num_thread' "$f" >"$modelfile"
    echo "PARAMETER num_thread $threads" >>"$modelfile"
    if "$ollama" create "$name" -f "$modelfile" >/dev/null; then
      say "$name ready, num_thread $threads"
    else
      say "could not create $name from $f"
    fi
    rm -f "$modelfile"
  done
}

"$ollama" serve &
server=$!
trap 'kill -TERM "$server" 2>/dev/null' TERM INT
create_models &
wait "$server"
rc=$?
# A trapped signal interrupts wait: wait again until the server has really stopped.
while kill -0 "$server" 2>/dev/null; do
  wait "$server"
  rc=$?
done
exit "$rc"
