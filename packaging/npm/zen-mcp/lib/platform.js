// Where the native binaries of this machine's platform package are.
"use strict";
const path = require("path");

const PACKAGES = {
  "linux x64": "@zen-mcp/linux-x64",
  "linux arm64": "@zen-mcp/linux-arm64",
  "darwin x64": "@zen-mcp/darwin-x64",
  "darwin arm64": "@zen-mcp/darwin-arm64",
};

function platformPackage() {
  return PACKAGES[`${process.platform} ${process.arch}`];
}

// The directory holding zen-shim and zend, or an Error saying what is wrong.
function nativeDir() {
  const pkg = platformPackage();
  if (!pkg) {
    return new Error(
      `zen-mcp has no binaries for ${process.platform} ${process.arch}; ` +
        "build from source instead (scripts/install.sh in the repository)"
    );
  }
  try {
    return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), "bin");
  } catch (_) {
    return new Error(
      `${pkg} is not installed (npm skipped the optional dependency that holds zen's binaries); ` +
        "reinstall without --omit=optional / --no-optional"
    );
  }
}

module.exports = { nativeDir, platformPackage };
