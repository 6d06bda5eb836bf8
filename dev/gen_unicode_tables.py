"""
Generate the Unicode class tables used by the GPT-2 pre-tokenizer in gpt3.h.

The GPT-2 split regex (as run by OpenAI's tiktoken, via Rust's `regex` crate)
needs three Unicode character classes:

  \\p{L}  letters:  general categories Lu, Ll, Lt, Lm, Lo
  \\p{N}  numbers:  general categories Nd, Nl, No
  \\s     spaces:   the Unicode White_Space property (PropList.txt). Note this
                   is NOT Python's str.isspace(): e.g. U+001C..U+001F are
                   isspace() but not White_Space; U+0085, U+00A0, U+2028 are
                   White_Space; U+200B and U+FEFF are not.

The tables must be those of the Unicode version tiktoken's regex uses: 16.0
for tiktoken 1.0.22 (dev/compare_tokenizer.mjs checks every code point).
This script reads the Unicode Character Database (Debian package
`unicode-data`: /usr/share/unicode/UnicodeData.txt and PropList.txt) and emits
each class as a sorted array of merged, inclusive code point ranges, which the
C code searches with a binary search. Standard library only.

Debian ships another version in each release (bookworm 15.0, trixie 15.1,
forky 17.0); 16.0 is in Debian's pool:
  curl -O http://deb.debian.org/debian/pool/main/u/unicode-data/unicode-data_16.0.0-1_all.deb
  dpkg-deb -x unicode-data_16.0.0-1_all.deb ucd16     # then --ucd ucd16/usr/share/unicode
  (sha256 0b51ab393efa8b39f3b9efbfbd7aad66020146b39c7d9e3621ec7ebbc5696dfa)

Usage (from the repo root):
  python3 dev/gen_unicode_tables.py                  print the C block to stdout
  python3 dev/gen_unicode_tables.py --write gpt3.h   replace the block in gpt3.h
  python3 dev/gen_unicode_tables.py --check          self-test (exit 1 on failure)
  ... --ucd DIR                                      read the UCD from DIR instead
"""
import argparse
import bisect
import os
import re
import sys

BEGIN = "/* BEGIN GENERATED UNICODE TABLES"  # the rest of this line holds the version
END = "/* END GENERATED UNICODE TABLES */"
LETTER_CATS = {"Lu", "Ll", "Lt", "Lm", "Lo"}
NUMBER_CATS = {"Nd", "Nl", "No"}


def merge(ranges):
    """Sort inclusive (lo, hi) ranges and join any that overlap or touch."""
    out = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [tuple(r) for r in out]


def read_categories(path, wanted):
    """Ranges of code points whose general category is in `wanted`.

    Each line of UnicodeData.txt is `CODE;NAME;CATEGORY;...`. Big blocks (CJK
    ideographs, Hangul syllables, ...) are not listed one by one but as a pair
    of lines named `<..., First>` and `<..., Last>` covering the whole range.
    """
    ranges, first = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            code, name, cat = line.split(";")[:3]
            cp = int(code, 16)
            if name.endswith(", First>"):
                first = cp                      # remember start, wait for Last
                continue
            lo = first if name.endswith(", Last>") else cp
            first = None
            if cat in wanted:
                ranges.append((lo, cp))
    return merge(ranges)


def read_property(path, prop):
    """Ranges with binary property `prop` in PropList.txt.

    Lines look like `2000..200A    ; White_Space # Zs  [11] EN QUAD..HAIR SPACE`.
    """
    ranges = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split("#")[0].split(";")
            if len(fields) == 2 and fields[1].strip() == prop:
                lo, _, hi = fields[0].strip().partition("..")
                ranges.append((int(lo, 16), int(hi or lo, 16)))
    return merge(ranges)


def ucd_version(ucd):
    """The UCD version, from PropList.txt's first line `# PropList-15.0.0.txt`.

    (UnicodeData.txt has no header.) If ReadMe.txt is present we also check
    that its "for Version X.Y.Z of the Unicode Standard" agrees.
    """
    with open(os.path.join(ucd, "PropList.txt"), encoding="utf-8") as f:
        m = re.match(r"# PropList-(\d+\.\d+\.\d+)\.txt", f.readline())
    if not m:
        sys.exit("error: cannot find the version in PropList.txt's header")
    readme = os.path.join(ucd, "ReadMe.txt")
    if os.path.exists(readme):
        with open(readme, encoding="utf-8") as f:
            r = re.search(r"Version (\d+\.\d+\.\d+) of the Unicode Standard", f.read())
        if r and r.group(1) != m.group(1):
            sys.exit(f"error: PropList.txt is {m.group(1)} but ReadMe.txt says {r.group(1)}")
    return m.group(1)


def load_tables(ucd):
    """Return (version, {C array name: (description, ranges)})."""
    data = os.path.join(ucd, "UnicodeData.txt")
    return ucd_version(ucd), {
        "gpt3__unicode_letters": (r"\p{L} letters (Lu Ll Lt Lm Lo)",
                                  read_categories(data, LETTER_CATS)),
        "gpt3__unicode_numbers": (r"\p{N} numbers (Nd Nl No)",
                                  read_categories(data, NUMBER_CATS)),
        "gpt3__unicode_spaces": (r"\s = White_Space property (PropList.txt)",
                                 read_property(os.path.join(ucd, "PropList.txt"),
                                               "White_Space")),
    }


def c_array(name, desc, ranges, width=100):
    """One C array of ranges, several `{0xLO, 0xHI},` per line, lines <= width."""
    lines = [f"/* {desc}: {len(ranges)} ranges */",
             f"static const uint32_t {name}[][2] = {{"]
    line = "   "
    for lo, hi in ranges:
        item = f" {{0x{lo:X}, 0x{hi:X}}},"
        if len(line) + len(item) > width:
            lines.append(line)
            line = "   "
        line += item
    lines.append(line)
    lines.append("};")
    return "\n".join(lines)


def c_block(version, tables):
    """The whole generated block, marker lines included, ending in a newline."""
    parts = [f"{BEGIN} (dev/gen_unicode_tables.py, Unicode {version}) */"]
    for name, (desc, ranges) in tables.items():
        parts.append(c_array(name, desc, ranges))
    parts.append(END)
    return "\n".join(parts) + "\n"


def write_block(path, block):
    """Replace the lines from the BEGIN marker to the END marker in `path`."""
    if not os.path.isfile(path):
        sys.exit(f"error: {path} not found")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
    begins = [i for i, l in enumerate(lines) if l.startswith(BEGIN)]
    ends = [i for i, l in enumerate(lines) if l.rstrip() == END]
    if len(begins) != 1 or len(ends) != 1 or begins[0] > ends[0]:
        sys.exit(f"error: {path} must contain exactly one line starting with\n  {BEGIN}\n"
                 f"followed later by exactly one line\n  {END}\n"
                 f"(found {len(begins)} begin and {len(ends)} end markers)")
    new = "".join(lines[:begins[0]]) + block + "".join(lines[ends[0] + 1:])
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)
    print(f"wrote {block.count(chr(10))} lines of tables into {path}", file=sys.stderr)


def contains(ranges, cp):
    """Binary search, the same way the C lookup does it."""
    i = bisect.bisect_right(ranges, (cp, 0x10FFFF)) - 1
    return i >= 0 and ranges[i][0] <= cp <= ranges[i][1]


def check(version, tables):
    """Verify known facts about the tables; cross-check with `regex` if present."""
    L, N, S = (ranges for _, ranges in tables.values())
    letters = "Azé\u0416\u4e2d\uac00\u01c5\u02b0"  # A z é Ж 中 가 ǅ(Lt) ʰ(Lm)
    numbers = "0\u0663\u00b2\u00bd\u216b"              # 0 ٣ ² ½ Ⅻ
    spaces = " \t\n\r\x0b\x0c\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    spaces += "".join(map(chr, range(0x2000, 0x200B)))  # U+2000..U+200A
    not_spaces = "\ufeff\u200b\u180e"
    nothing = "_-\U0001F600\ufffd"                       # _ - 😀 U+FFFD
    facts = ([(c, "letter", L, True) for c in letters] +
             [(c, "number", N, True) for c in numbers] +
             [(c, "space", S, True) for c in spaces] +
             [(c, "space", S, False) for c in not_spaces + nothing] +
             [(c, k, t, False) for c in nothing for k, t in (("letter", L), ("number", N))])
    failed = 0
    for c, kind, table, expected in facts:
        if contains(table, ord(c)) != expected:
            failed += 1
            print(f"FAIL: U+{ord(c):04X} should {'' if expected else 'not '}be a {kind}")
    print(f"UCD {version}: {len(facts) - failed}/{len(facts)} facts OK; ranges: "
          f"{len(L)} letters, {len(N)} numbers, {len(S)} spaces")

    try:
        import regex  # optional (Debian: python3-regex)
    except ImportError:
        print("regex module not installed: skipping the full cross-check")
        return failed == 0
    import unicodedata
    # Compare every code point. regex may be built on another Unicode version
    # (it does not expose which), so disagreements are reported, not failures.
    from importlib.metadata import version as dist_version
    print(f"cross-check vs regex {dist_version('regex')} (module {regex.__version__}; "
          f"its Unicode version is not exposed) "
          f"(Python {sys.version.split()[0]}, unicodedata {unicodedata.unidata_version}):")
    everything = "".join(map(chr, range(0x110000)))
    for label, table, pattern in ((r"\p{L}", L, r"\p{L}"), (r"\p{N}", N, r"\p{N}"),
                                  (r"\s", S, r"\s"), ("White_Space", S, r"\p{White_Space}")):
        theirs = {m.start() for m in regex.finditer(pattern, everything)}
        ours = {cp for lo, hi in table for cp in range(lo, hi + 1)}
        print(f"  {label:12} vs regex {pattern:16}: {len(ours ^ theirs)} disagreements")
    diff = sorted({cp for cp in range(0x110000) if chr(cp).isspace()} ^
                  {cp for lo, hi in S for cp in range(lo, hi + 1)})
    print(f"  (for info: str.isspace() differs from White_Space on {len(diff)} "
          f"code points: {', '.join(f'U+{cp:04X}' for cp in diff)})")
    return failed == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    ap.add_argument("--write", metavar="PATH", help="replace the generated block in PATH")
    ap.add_argument("--check", action="store_true", help="run the self-test")
    ap.add_argument("--ucd", default="/usr/share/unicode", help="UCD directory")
    args = ap.parse_args()
    for f in ("UnicodeData.txt", "PropList.txt"):
        if not os.path.exists(os.path.join(args.ucd, f)):
            sys.exit(f"error: {args.ucd}/{f} not found (apt-get install unicode-data)")
    version, tables = load_tables(args.ucd)
    if args.check:
        sys.exit(0 if check(version, tables) else 1)
    block = c_block(version, tables)
    if args.write:
        write_block(args.write, block)
    else:
        sys.stdout.write(block)


if __name__ == "__main__":
    main()
