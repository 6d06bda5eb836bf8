// bench_tiktoken.mjs: OpenAI's tokenizer speed on the text `./demo bench` uses,
// for comparison with gpt3.h's tokenizer (its "tokenizer mb_per_s").
//
//     node dev/bench_tiktoken.mjs [textfile]
//
// textfile defaults to fixtures/tokenizer/bench.txt (a relative path is taken
// from the repo root, the parent of dev/). The file's bytes are repeated and
// cut to exactly 4 MiB, decoded as UTF-8 (a multibyte character cut at the end
// becomes U+FFFD), and encoded 3 times with npm tiktoken (the WASM build of
// OpenAI's Rust core, installed under dev/node_modules by `cd dev && npm ci`):
// get_encoding("r50k_base").encode_ordinary(text). Prints one line on stdout,
//
//     tokenizer<TAB>tiktoken_mb_per_s<TAB>value
//
// from the best of the 3 times, MB being 1e6 bytes of the 4 MiB input.
// Details go to stderr.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const devDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(devDir, "..");
const require = createRequire(import.meta.url); // finds dev/node_modules from any cwd
const { get_encoding } = require("tiktoken");
const version = JSON.parse(readFileSync(resolve(devDir, "node_modules/tiktoken/package.json"), "utf8")).version;

const SIZE = 4 << 20;
const REPEATS = 3;

const path = resolve(repoRoot, process.argv[2] ?? "fixtures/tokenizer/bench.txt");
const src = readFileSync(path);
if (src.length === 0) {
    console.error(`bench_tiktoken: ${path} is empty`);
    process.exit(1);
}
const buf = Buffer.alloc(SIZE);
for (let off = 0; off < SIZE; off += src.length) src.copy(buf, off, 0, Math.min(src.length, SIZE - off));
const text = new TextDecoder("utf-8").decode(buf); // non-fatal: bad bytes -> U+FFFD

const enc = get_encoding("r50k_base");
let best = Infinity, ntokens = 0;
for (let i = 0; i < REPEATS; i++) {
    const t0 = process.hrtime.bigint();
    ntokens = enc.encode_ordinary(text).length;
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    console.error(`tiktoken ${version} r50k_base: ${SIZE} bytes -> ${ntokens} tokens in ${s.toFixed(3)} s`);
    best = Math.min(best, s);
}
enc.free();
console.log(`tokenizer\ttiktoken_mb_per_s\t${(SIZE / 1e6 / best).toPrecision(6)}`);
