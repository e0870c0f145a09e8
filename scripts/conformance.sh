#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance)
# against zend's streamable HTTP endpoint (`zend serve --http`).
#
# The suite cannot send a bearer token, so a small Node proxy on loopback adds
# zend's token to every request. Everything runs under a temporary ZEN_HOME and
# is stopped on exit. Needs Node and npx (Node >= 22 is fetched with
# `npx -p node@22` when the installed one is older); skips when they are missing.
#
#   scripts/conformance.sh [extra conformance args, e.g. --scenario server-initialize]
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v node >/dev/null || ! command -v npx >/dev/null; then
    echo "conformance: skipped (node and npx are needed; install Node >= 22)"
    exit 0
fi

zend="${ZEND_BIN:-$root/target/debug/zend}"
if [[ -z "${ZEND_BIN:-}" ]]; then
    cargo build --quiet --manifest-path "$root/Cargo.toml" -p zend
fi

home="$(mktemp -d /tmp/zc.XXXXXX)"
export ZEN_HOME="$home"
zend_pid="" proxy_pid=""
cleanup() {
    [[ -n "$proxy_pid" ]] && kill "$proxy_pid" 2>/dev/null || true
    if [[ -n "$zend_pid" ]]; then
        "$zend" stop --deadline 2 >/dev/null 2>&1 || kill "$zend_pid" 2>/dev/null || true
        wait "$zend_pid" 2>/dev/null || true
    fi
    rm -rf "$home"
}
trap cleanup EXIT

token="$("$zend" http-token)"
ZEN_LOG=info "$zend" serve --http 127.0.0.1:0 2>"$home/serve.log" &
zend_pid=$!
url=""
for _ in $(seq 100); do
    url="$(sed -n 's/.*serving MCP over HTTP at \(http:[^ ]*\).*/\1/p' "$home/serve.log" | head -1)"
    [[ -n "$url" ]] && break
    sleep 0.1
done
[[ -n "$url" ]] || { echo "conformance: zend did not start:"; cat "$home/serve.log"; exit 1; }

# The proxy: adds the bearer token, keeps every other header (Host and Origin
# included, so the DNS-rebinding checks reach zend) and streams both ways.
ZEN_UPSTREAM="$url" ZEN_TOKEN="$token" node -e '
const http = require("http");
const upstream = new URL(process.env.ZEN_UPSTREAM);
const server = http.createServer((req, res) => {
  const headers = { ...req.headers, authorization: "Bearer " + process.env.ZEN_TOKEN };
  const out = http.request({ host: upstream.hostname, port: upstream.port, path: upstream.pathname,
                             method: req.method, headers }, (up) => {
    res.writeHead(up.statusCode, up.headers);
    up.pipe(res);
  });
  out.on("error", () => { res.writeHead(502); res.end(); });
  req.pipe(out);
});
server.listen(0, "127.0.0.1", () => console.log("http://127.0.0.1:" + server.address().port + "/mcp"));
' >"$home/proxy.url" &
proxy_pid=$!
for _ in $(seq 100); do [[ -s "$home/proxy.url" ]] && break; sleep 0.1; done
proxy_url="$(head -1 "$home/proxy.url")"

echo "conformance: zend at $url, via token proxy $proxy_url"
npx -y -p node@22 -p @modelcontextprotocol/conformance -- \
    conformance server --url "$proxy_url" "$@"
