#!/usr/bin/env python3
"""
Reference GPT-2 / r50k_base byte-level BPE encoder that also accepts bytes
that are not valid UTF-8. Used by make_tokenizer_fixtures.mjs to compute the
expected ids of the invalid-UTF-8 fixture cases (which tiktoken cannot take),
and checked there against tiktoken on every valid-UTF-8 case.

Rule for invalid input (the one gpt3.h implements): every byte that is not
part of a well-formed UTF-8 sequence is one character of the class "neither
letter, number nor whitespace" for pre-tokenization; BPE then runs on the raw
bytes of each pre-token, so every byte string round-trips. Here this falls
out of bytes.decode('utf-8', 'surrogateescape'): Python's strict UTF-8
decoder rejects overlongs, surrogates, code points above U+10FFFF and
truncated sequences, and each rejected byte becomes one lone surrogate
U+DC80..U+DCFF, which is not \\p{L}, not \\p{N} and not \\s.

On \\s: OpenAI's tokenizer (Rust regex / fancy-regex) reads \\s as the Unicode
White_Space property. The `regex` module's \\s is the same set (25 code
points: 9-D, 20, 85, A0, 1680, 2000-200A, 2028, 2029, 202F, 205F, 3000;
not FEFF, 180E, 200B, nor 1C-1F, which str.isspace() accepts), so the GPT-2
pattern is used verbatim; check_whitespace() asserts this at start-up.

Usage:
  reference_bpe.py [--vocab DIR] < bytes         ids of stdin, space-separated
  reference_bpe.py [--vocab DIR] --batch < frames
      frames = repeated (uint32 little-endian length, that many bytes);
      prints one line of space-separated ids per frame.
DIR defaults to ../fixtures/gpt2 (beside this script): encoder.json, vocab.bpe.
Needs the `regex` module (Debian: python3-regex; or pip install regex).
"""
import json
import os
import struct
import sys

import regex

PAT = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


def check_whitespace():
    """Our \\s must be exactly Unicode White_Space (tiktoken's \\s)."""
    white_space = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680,
                   *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
    not_white_space = [0x00, 0x1C, 0x1D, 0x1E, 0x1F, 0x7F, 0x180E, 0x200B,
                       0x200C, 0x200D, 0x2060, 0xFEFF, 0xDC80, 0xDCFF]
    for c in white_space:
        assert regex.fullmatch(r"\s", chr(c)), hex(c)
    for c in not_white_space:
        assert not regex.fullmatch(r"\s", chr(c)), hex(c)


def bytes_to_unicode():
    """GPT-2's map from each byte to a printable character (encoder.py)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class Encoder:
    def __init__(self, vocab_dir):
        with open(os.path.join(vocab_dir, "encoder.json"), encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(os.path.join(vocab_dir, "vocab.bpe"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        assert lines[0].startswith("#version")
        merges = [tuple(line.split(" ")) for line in lines[1:] if line]
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.cache = {}

    def bpe(self, word):
        """Merge the lowest-ranked adjacent pair (all its occurrences, left to
        right) until no adjacent pair is in vocab.bpe. word: tuple of symbols."""
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        return word

    def encode(self, data: bytes):
        text = data.decode("utf-8", "surrogateescape")
        ids = []
        for piece in PAT.findall(text):
            raw = piece.encode("utf-8", "surrogateescape")
            if raw not in self.cache:
                symbols = tuple(self.byte_encoder[b] for b in raw)
                self.cache[raw] = [self.encoder[s] for s in self.bpe(symbols)]
            ids.extend(self.cache[raw])
        return ids


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    vocab_dir = os.path.join(here, "..", "fixtures", "gpt2")
    batch = False
    args = argv[1:]
    while args:
        a = args.pop(0)
        if a == "--vocab":
            vocab_dir = args.pop(0)
        elif a == "--batch":
            batch = True
        else:
            sys.exit(__doc__)
    check_whitespace()
    enc = Encoder(vocab_dir)
    data = sys.stdin.buffer.read()
    out = []
    if not batch:
        out.append(" ".join(map(str, enc.encode(data))))
    else:
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack_from("<I", data, pos)
            pos += 4
            out.append(" ".join(map(str, enc.encode(data[pos:pos + n]))))
            pos += n
        assert pos == len(data), "truncated frame"
    sys.stdout.write("".join(line + "\n" for line in out))


if __name__ == "__main__":
    main(sys.argv)
