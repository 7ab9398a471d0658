#!/usr/bin/env bash
# Quick start: installs what is needed, builds mcp, starts a local agent (--dev: its own
# CA, certificates and SQLite registry under .demo/), builds the example image, deploys
# examples/hello/hello.toml and prints its status and HTTP answer. Rerunning it restarts
# the agent; the service keeps running throughout.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
install_packages

# Sandboxed machines need runc and explicit ulimits; select that setting for this demo
# only (nothing under /etc/containers is changed).
export CONTAINERS_CONF="$PWD/config/podman-sandbox.conf"
demo="$PWD/.demo"
mkdir -p "$demo"

echo "==> building mcp and mcp-agent"
cargo build --quiet --bins
bin="$PWD/target/debug"

echo "==> building the example image localhost/hello:v1.0.0"
gcc -static -O2 -o examples/hello/hello examples/hello/hello.c
podman build --quiet -t localhost/hello:v1.0.0 examples/hello >/dev/null
rm -f examples/hello/hello

if [[ -f "$demo/agent.pid" ]] && kill -0 "$(cat "$demo/agent.pid")" 2>/dev/null; then
    echo "==> stopping the previous demo agent"
    kill "$(cat "$demo/agent.pid")"
    while kill -0 "$(cat "$demo/agent.pid")" 2>/dev/null; do sleep 0.2; done
fi

echo "==> starting mcp-agent --dev --dir $demo (log: $demo/agent.log)"
: > "$demo/agent.out"
nohup "$bin/mcp-agent" --dev --dir "$demo" --listen 127.0.0.1:7443 \
    >"$demo/agent.out" 2>"$demo/agent.log" &
echo $! > "$demo/agent.pid"
for _ in $(seq 1 100); do
    grep -q "listening on" "$demo/agent.out" && break
    kill -0 "$(cat "$demo/agent.pid")" 2>/dev/null || { tail -n 20 "$demo/agent.log"; exit 1; }
    sleep 0.1
done
grep "listening on" "$demo/agent.out"

export MCP_CONFIG="$demo/mcp.toml"
echo "==> mcp deploy examples/hello/hello.toml"
"$bin/mcp" deploy examples/hello/hello.toml
echo
echo "==> mcp status"
"$bin/mcp" status
echo
echo "==> curl http://127.0.0.1:48080/"
for _ in $(seq 1 50); do
    curl -fsS http://127.0.0.1:48080/ && break
    sleep 0.1
done
cat <<MSG

The agent keeps running (pid $(cat "$demo/agent.pid")). Try:
  export MCP_CONFIG=$MCP_CONFIG CONTAINERS_CONF=$CONTAINERS_CONF
  $bin/mcp logs hello -f        $bin/mcp ps        $bin/mcp node status
  $bin/mcp undeploy hello       kill $(cat "$demo/agent.pid")   # stop the agent
MSG
