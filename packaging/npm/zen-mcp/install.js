// postinstall: put the native binaries where npm linked this package's commands, replacing the
// fallback launchers, so that `zen-mcp`, `zen-shim` and `zend` are the native programs and an MCP
// client pays nothing for Node at start-up. Binaries come from the platform package npm already
// installed (an optional dependency): nothing is downloaded here. If anything fails, the fallback
// launchers stay and still work.
"use strict";
const fs = require("fs");
const path = require("path");
const { nativeDir } = require("./lib/platform.js");

const dir = nativeDir();
if (dir instanceof Error) {
  process.stderr.write(`zen-mcp: ${dir.message}\n`);
  process.exit(0);
}
const bin = path.join(__dirname, "bin");
const commands = { "zen-mcp": "zen-shim", "zen-shim": "zen-shim", zend: "zend" };
for (const [command, program] of Object.entries(commands)) {
  const from = path.join(dir, program);
  const to = path.join(bin, command);
  const staged = `${to}.native`;
  try {
    fs.rmSync(staged, { force: true });
    try {
      fs.linkSync(from, staged);
    } catch (_) {
      fs.copyFileSync(from, staged);
    }
    fs.chmodSync(staged, 0o755);
    fs.renameSync(staged, to);
  } catch (e) {
    fs.rmSync(staged, { force: true });
    process.stderr.write(`zen-mcp: kept the Node launcher for ${command} (${e.message})\n`);
  }
}
