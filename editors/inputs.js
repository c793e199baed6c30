// The texts every editor grammar is tested on: each example of journeys/ and each
// ```-fenced block of docs/language.md that is not another language.
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");

function examples() {
  const dir = path.join(root, "journeys");
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".journey"))
    .sort()
    .map((f) => ({ name: `journeys/${f}`, text: fs.readFileSync(path.join(dir, f), "utf8") }));
}

function docBlocks() {
  const lines = fs.readFileSync(path.join(root, "docs", "language.md"), "utf8").split("\n");
  const out = [];
  let block = null;
  lines.forEach((line, i) => {
    if (block === null && line.startsWith("```")) {
      block = { lang: line.slice(3).trim(), start: i + 2, lines: [] };
    } else if (block !== null && line.startsWith("```")) {
      if (block.lang === "" || block.lang === "journey") {
        out.push({ name: `docs/language.md:${block.start}`, text: block.lines.join("\n") + "\n" });
      }
      block = null;
    } else if (block !== null) {
      block.lines.push(line);
    }
  });
  return out;
}

// The keywords of grammar/journey.pest: every quoted word of its rules.
function pestKeywords() {
  const pest = fs.readFileSync(path.join(root, "grammar", "journey.pest"), "utf8");
  const words = new Set();
  for (const line of pest.split("\n")) {
    const code = line.replace(/\/\/.*$/, "");
    for (const m of code.matchAll(/"([A-Za-z_]+)"/g)) {
      words.add(m[1]);
    }
  }
  return words;
}

module.exports = { root, examples, docBlocks, pestKeywords };
