#!/usr/bin/env bash
# Packages the VS Code extension as editors/vscode/journey.vsix with @vscode/vsce (npm).
# Install it with: code --install-extension editors/vscode/journey.vsix
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npx vsce package --skip-license --allow-missing-repository -o journey.vsix
