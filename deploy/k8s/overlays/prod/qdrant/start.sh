#!/bin/bash
# Starts one peer of the Qdrant cluster (StatefulSet qdrant, headless Service qdrant-headless).
# qdrant-0 founds the cluster; every other peer bootstraps from qdrant-0 over the p2p port 6335.
# Each peer announces its own stable DNS name, so a restarted pod rejoins with the same URI.
set -euo pipefail
ordinal="${HOSTNAME##*-}"
peer_uri() { echo "http://qdrant-$1.qdrant-headless:6335"; }

# The API key comes from a mounted Secret file, not from the pod spec's env.
QDRANT__SERVICE__API_KEY="$(cat /run/secrets/qdrant/api-key)"
export QDRANT__SERVICE__API_KEY

cd /qdrant
if [ "${ordinal}" = "0" ]; then
  echo "qdrant peer ${HOSTNAME}: founding peer"
  exec ./entrypoint.sh --uri "$(peer_uri 0)"
fi
echo "qdrant peer ${HOSTNAME}: bootstrapping from $(peer_uri 0)"
exec ./entrypoint.sh --bootstrap "$(peer_uri 0)" --uri "$(peer_uri "${ordinal}")"
