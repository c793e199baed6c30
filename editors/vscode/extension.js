// The Journey extension: starts `journey lsp` for *.journey files (highlighting comes from
// syntaxes/journey.tmLanguage.json). The executable is `journey` on the PATH, or the
// `journey.path` setting.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("journey").get("path") || "journey";
  const server = { command, args: ["lsp"] };
  client = new LanguageClient(
    "journey",
    "Journey",
    { run: server, debug: server },
    {
      documentSelector: [{ scheme: "file", language: "journey" }],
      synchronize: {
        fileEvents: vscode.workspace.createFileSystemWatcher("**/{*.journey,templates/**}"),
      },
    }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
