// compare_tokenizer.mjs: gpt3.h's GPT-2 tokenizer (./demo encode) against
// OpenAI's (npm tiktoken, r50k_base encode_ordinary), on text nobody tuned
// either on. Not part of `make test`: it needs Node and tiktoken.
//
//     make demo && cd dev && npm ci && cd ..
//     node dev/compare_tokenizer.mjs                 every code point, in 8 contexts
//     node dev/compare_tokenizer.mjs FILE...         each file (valid UTF-8 only)
//     node dev/compare_tokenizer.mjs --random SEED   20 MB of random text (spaces, contractions, scripts)
//
// With no files it writes one line per Unicode scalar value c (U+0000..U+10FFFF,
// not surrogates) that shows c's class: a c b, c1, 9c, c c, c's, c before a
// no-break space, ... A code point that gpt3.h's tables put in another class
// than tiktoken's (letter, number, White_Space, other) splits its line
// differently, so its token boundaries differ. Prints the code points whose
// lines differ, as ranges; with files, the first byte where each file differs.
// Exit status 1 on any difference.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const require = createRequire(import.meta.url);
const { get_encoding } = require("tiktoken");
const enc = get_encoding("r50k_base");
const tokenBytes = new Map(); // id -> its length in bytes
const tokenLength = (id) => {
  if (!tokenBytes.has(id)) tokenBytes.set(id, enc.decode_single_token_bytes(id).length);
  return tokenBytes.get(id);
};

// gpt3.h's ids for `bytes`, through the CLI.
function ours(bytes) {
  const r = spawnSync(path.join(ROOT, "demo"), ["encode", "--encoder", path.join(ROOT, "fixtures/gpt2/encoder.json"),
    "--bpe", path.join(ROOT, "fixtures/gpt2/vocab.bpe")], { input: bytes, maxBuffer: 1 << 30, encoding: "utf8" });
  if (r.status !== 0) throw new Error("./demo encode failed (make demo first):\n" + r.stderr);
  return r.stdout.trim().split(/\s+/).filter((x) => x !== "").map(Number);
}

// The byte offsets where tokens end, in increasing order.
function boundaries(ids) {
  const ends = new Uint32Array(ids.length);
  let at = 0;
  ids.forEach((id, i) => (ends[i] = at += tokenLength(id)));
  return ends;
}

// Byte offsets at which the two tokenizations disagree (increasing), or [] if the ids are equal.
function differences(text) {
  const bytes = Buffer.from(text, "utf8");
  const theirs = Array.from(enc.encode_ordinary(text));
  const mine = ours(bytes);
  if (theirs.length === mine.length && theirs.every((x, i) => x === mine[i])) return [];
  const a = boundaries(theirs), b = boundaries(mine), diff = [];
  for (let i = 0, j = 0; i < a.length || j < b.length;) {
    if (j === b.length || (i < a.length && a[i] < b[j])) diff.push(a[i++]);
    else if (i === a.length || b[j] < a[i]) diff.push(b[j++]);
    else i++, j++;
  }
  return diff.length ? diff : [0]; // same boundaries, other ids
}

function sweepCodePoints() {
  const lines = [], starts = [], cps = [];
  let at = 0;
  for (let c = 0; c <= 0x10ffff; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    const x = String.fromCodePoint(c);
    const line = `a${x}b ${x}1 ${x}${x}'s${x} 9${x}\u00a0${x}  ${x}x\n`;
    cps.push(c);
    starts.push(at);
    lines.push(line);
    at += Buffer.byteLength(line, "utf8");
  }
  const offsets = differences(lines.join(""));
  const bad = new Set();
  let j = 0;
  for (const off of offsets) {
    while (j + 1 < starts.length && starts[j + 1] < off) j++;
    bad.add(cps[j]);
  }
  const runs = [];
  for (const c of [...bad].sort((x, y) => x - y)) {
    if (runs.length && runs[runs.length - 1][1] === c - 1) runs[runs.length - 1][1] = c;
    else runs.push([c, c]);
  }
  const hex = (c) => "U+" + c.toString(16).toUpperCase().padStart(4, "0");
  console.log(`${cps.length} code points x 8 contexts (${at} bytes): ${bad.size} tokenize differently`);
  if (runs.length) console.log("  " + runs.map(([a, b]) => (a === b ? hex(a) : hex(a) + ".." + hex(b))).join(" "));
  return bad.size === 0;
}

// Random text from a pool that stresses the pattern: every kind of space,
// newlines, apostrophes and contractions in both cases, letters, digits and
// marks of several scripts, emoji, and random code points of any plane.
function randomText(seed, bytes) {
  let a = seed >>> 0; // mulberry32
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pool = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u0085", "\u2028", "\u3000", "\u200b", "\ufeff", "\u001f",
    "'", "'s", "'S", "'ll", "'LL", "'ve", "'re", "'d", "'m", "'t", "\u2019", "a", "Z", "\u00e9", "\u0301", "\u0915\u093f",
    "\u4e2d", "\u0663", "\u00b2", "\u216b", "7", "42", "!", "?!", "-", "_", "\u{1F600}", "\u200d", "\ufe0f", "\u{1D7D8}"];
  let text = "", n = 0;
  while (n < bytes) {
    const piece = rand() < 0.1
      ? String.fromCodePoint(((c) => (c >= 0xd800 && c <= 0xdfff ? 0xfffd : c))(Math.floor(rand() ** 3 * 0x110000)))
      : pool[Math.floor(rand() * pool.length)];
    text += piece;
    n += Buffer.byteLength(piece, "utf8");
  }
  return text;
}

function compareRandom(seed) {
  const text = randomText(seed, 20_000_000);
  const diff = differences(text);
  const at = diff.length ? Buffer.from(text, "utf8").subarray(Math.max(0, diff[0] - 40), diff[0] + 40) : null;
  console.log(`random text, seed ${seed}, ${Buffer.byteLength(text, "utf8")} bytes: ` +
    (diff.length ? `differs from byte ${diff[0]}: ${JSON.stringify(at.toString("utf8"))}` : "same ids"));
  return diff.length === 0;
}

function compareFile(file) {
  const bytes = fs.readFileSync(file);
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  if (!Buffer.from(text, "utf8").equals(bytes)) {
    console.log(`${file}: not valid UTF-8, skipped (tiktoken takes only text)`);
    return true;
  }
  const diff = differences(text);
  console.log(`${file}: ${bytes.length} bytes: ${diff.length ? "differs from byte " + diff[0] : "same ids"}`);
  return diff.length === 0;
}

const args = process.argv.slice(2);
const ok = args[0] === "--random" ? compareRandom(Number(args[1] ?? 1))
  : args.length ? args.map(compareFile).every(Boolean) : sweepCodePoints();
enc.free();
process.exit(ok ? 0 : 1);
