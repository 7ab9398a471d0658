#!/usr/bin/env bash
# Quick start: installs what is needed, builds mcp, starts a local OCI registry on
# 127.0.0.1:5000 and a local agent (--dev: its own CA, certificates and SQLite registry under
# .demo/), then `mcp deploy examples/hello/hello.toml` builds the example's image, pushes it,
# deploys it, and the script prints its status and HTTP answer. Rerunning it restarts the
# agent; the service keeps running throughout, and the pushed tag is not rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
install_packages

# Sandboxed machines need runc and explicit ulimits; select that setting for this demo
# only (nothing under /etc/containers is changed).
export CONTAINERS_CONF="$PWD/config/podman-sandbox.conf"
demo="$PWD/.demo"
mkdir -p "$demo"

echo "==> building mcp, mcp-agent and mcp-proxy"
cargo build --quiet --bins
bin="$PWD/target/debug"

stop_pidfile() {
    if [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; then
        kill "$(cat "$1")"
        while kill -0 "$(cat "$1")" 2>/dev/null; do sleep 0.2; done
    fi
}

wait_for() { # what, command... (up to 30 s: podman's first command after a boot refreshes
    # its whole state, which can hold up the agent's start for seconds)
    local what=$1; shift
    for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "$what did not come up" >&2
    return 1
}

echo "==> OCI registry on 127.0.0.1:5000 (storage: $demo/registry)"
if ! curl -fsS --max-time 2 http://127.0.0.1:5000/v2/ >/dev/null 2>&1; then
    cat > "$demo/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $demo/registry
http:
  addr: 127.0.0.1:5000
YAML
    nohup docker-registry serve "$demo/registry.yml" >"$demo/registry.log" 2>&1 &
    echo $! > "$demo/registry.pid"
    wait_for "the registry" curl -fsS --max-time 2 http://127.0.0.1:5000/v2/ || { tail -n 20 "$demo/registry.log"; exit 1; }
fi

echo "==> compiling the example server into its build context"
gcc -static -O2 -o examples/hello/hello examples/hello/hello.c

stop_pidfile "$demo/agent.pid"
echo "==> starting mcp-agent --dev --dir $demo (log: $demo/agent.log)"
: > "$demo/agent.out"
nohup "$bin/mcp-agent" --dev --dir "$demo" --listen 127.0.0.1:7443 \
    --insecure-registry 127.0.0.1:5000 >"$demo/agent.out" 2>"$demo/agent.log" &
echo $! > "$demo/agent.pid"
wait_for "the agent" grep -q "listening on" "$demo/agent.out" || { tail -n 20 "$demo/agent.log"; exit 1; }
grep "listening on" "$demo/agent.out"

export MCP_CONFIG="$demo/mcp.toml"
# The agent writes mcp.toml (and keeps what is added to it): add where images are built.
if ! grep -q '^\[build\]' "$MCP_CONFIG"; then
    printf '\n[build]\nworkspace = "%s"\ninsecure_registries = ["127.0.0.1:5000"]\n' \
        "$PWD/examples" >> "$MCP_CONFIG"
fi

echo "==> mcp deploy examples/hello/hello.toml"
"$bin/mcp" deploy examples/hello/hello.toml
echo
echo "==> mcp status"
"$bin/mcp" status
echo
echo "==> curl http://127.0.0.1:48080/   (through the node proxy)"
wait_for "the service" curl -fsS --max-time 2 http://127.0.0.1:48080/
curl -fsS --max-time 5 http://127.0.0.1:48080/
cat <<MSG

The agent (pid $(cat "$demo/agent.pid")) and the registry keep running. Try:
  export MCP_CONFIG=$MCP_CONFIG CONTAINERS_CONF=$CONTAINERS_CONF
  $bin/mcp logs hello -f     $bin/mcp events     $bin/mcp ps     $bin/mcp node status
  $bin/mcp plan examples/hello/hello.toml     $bin/mcp history hello     $bin/mcp rollback hello
  $bin/mcp undeploy hello    kill \$(cat $demo/agent.pid) \$(cat $demo/registry.pid 2>/dev/null)
  pkill -f "mcp-proxy --state-dir $demo/state/proxy"    # the proxy outlives the agent on purpose
MSG
