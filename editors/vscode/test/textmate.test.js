// The TextMate grammar, run by the engine VS Code runs (vscode-textmate on Oniguruma) over
// every example and documentation block: comments, strings and every keyword of the pest
// grammar get their scopes, and a send's message name is a name.
const test = require("node:test");
const assert = require("node:assert");
const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");
const { examples, docBlocks, pestKeywords } = require("../../inputs");

const here = path.resolve(__dirname, "..");

async function grammar() {
  const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm")).buffer;
  await oniguruma.loadWASM(wasm);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (p) => new oniguruma.OnigScanner(p),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async () =>
      vsctm.parseRawGrammar(
        fs.readFileSync(path.join(here, "syntaxes", "journey.tmLanguage.json"), "utf8"),
        "journey.tmLanguage.json"
      ),
  });
  return registry.loadGrammar("source.journey");
}

// Each token of a text: its line, start, end, text and innermost scope.
function tokenize(g, text) {
  const out = [];
  let stack = vsctm.INITIAL;
  text.split("\n").forEach((line, n) => {
    const r = g.tokenizeLine(line, stack);
    for (const t of r.tokens) {
      const s = t.scopes.slice(1);
      out.push({ line: n, start: t.startIndex, end: t.endIndex, text: line.slice(t.startIndex, t.endIndex), scopes: s });
    }
    stack = r.ruleStack;
  });
  return out;
}

const KEYWORD_SCOPES = /^(keyword|storage|support|constant)\./;

test("every example and documentation block is highlighted as the language reads it", async () => {
  const g = await grammar();
  const keywords = pestKeywords();
  const inputs = [...examples(), ...docBlocks()];
  assert.ok(inputs.length >= 25, `only ${inputs.length} inputs`);
  const seen = new Set();
  for (const { name, text } of inputs) {
    const toks = tokenize(g, text);
    for (const t of toks) {
      const inner = t.scopes[t.scopes.length - 1] || "";
      const inString = t.scopes.some((s) => s.startsWith("string."));
      const inComment = t.scopes.some((s) => s.startsWith("comment."));
      const where = `${name}:${t.line + 1}:${t.start + 1} '${t.text}' ${JSON.stringify(t.scopes)}`;
      if (!inString && !inComment) {
        // A comment starts only where the grammar says: `#` outside strings.
        assert.ok(!t.text.includes("#"), `a # outside a comment at ${where}`);
        for (const m of t.text.matchAll(/[A-Za-z_][A-Za-z0-9_]*/g)) {
          if (keywords.has(m[0]) && m[0] === t.text.trim()) {
            assert.match(inner, KEYWORD_SCOPES, `keyword not highlighted at ${where}`);
            seen.add(m[0]);
          }
        }
      }
    }
    // Strings and comments, as the lines show them.
    const lines = text.split("\n");
    lines.forEach((line, n) => {
      const onLine = toks.filter((t) => t.line === n);
      const hash = onLine.find((t) => t.text.startsWith("#") && t.scopes.some((s) => s.startsWith("comment.")));
      if (/^\s*#/.test(line)) {
        assert.ok(hash, `${name}:${n + 1}: a comment line not scoped as one`);
      }
      for (const m of line.matchAll(/\bsend\s+(email|sms|push|webhook)\s+([a-z_][a-z0-9_]*)/g)) {
        const at = m.index + m[0].length - m[2].length;
        const t = onLine.find((t) => t.start === at);
        assert.ok(t && t.scopes.includes("entity.name.function.message.journey"), `${name}:${n + 1}: message name ${m[2]}`);
      }
    });
  }
  // The examples use most of the language: at least these keywords were seen and checked.
  for (const k of ["journey", "segment", "policy", "topic", "send", "check", "wait", "if", "split", "goto", "where", "within"]) {
    assert.ok(seen.has(k), `${k} never checked`);
  }
});

test("strings, durations, times and zones get their scopes", async () => {
  const g = await grammar();
  const toks = tokenize(g, 'wait until 2026-03-14 09:00 Europe/Rome # note\nsend sms s { text "a \\"b\\" {{ x }}" }\nwait 1d12h\n');
  const scope = (text) => {
    const t = toks.find((t) => t.text === text);
    assert.ok(t, `no token ${text}`);
    return t.scopes[t.scopes.length - 1];
  };
  assert.strictEqual(scope("2026-03-14"), "constant.numeric.date.journey");
  assert.strictEqual(scope("09:00"), "constant.numeric.time.journey");
  assert.strictEqual(scope("Europe/Rome"), "support.constant.timezone.journey");
  assert.strictEqual(scope("# note"), "comment.line.number-sign.journey");
  assert.strictEqual(scope("1d12h"), "constant.numeric.duration.journey");
  assert.strictEqual(scope("{{ x }}"), "meta.embedded.template.journey");
  assert.strictEqual(scope("s"), "entity.name.function.message.journey");
});
