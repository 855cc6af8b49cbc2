#!/usr/bin/env python3
"""The benchmark's data and checks (used by bench/compare.sh, remote.sh and profile.sh).

  tree.py generate ROOT [--scale F] [--seed N]   the tree (same bytes for the same F and N)
  tree.py edit ROOT [--scale F] [--seed N]       "a day of edits", applied in place
  tree.py describe ROOT                          counts, MB and gzip ratio of each class
  tree.py compare SOURCE RESTORED [--meta]       exit 1 (listing differences) unless equal
  tree.py table RESULTS [--runs N] [--title T]   the markdown table of a results file

At scale 1 the tree is about 591 MB: 6,000 source-like text files, 24 x 4 MiB random
files, a 256 MB database image of 8 KiB pages (structured rows, free space, some random
pages), two 64 MiB media files (random), a few symbolic links and an empty folder. Every
byte, mode and mtime comes from the seed, so two runs back up the same tree.
"""

import argparse
import hashlib
import os
import random
import stat
import statistics
import struct
import sys
import zlib

BASE_TIME = 1_700_000_000  # mtimes of the generated tree
EDIT_TIME = BASE_TIME + 86_400  # mtimes the edits give
PAGE = 8192
MIB = 1 << 20

KEYWORDS = [
    "fn", "let", "mut", "if", "else", "for", "while", "return", "match", "pub", "struct",
    "impl", "use", "const", "static", "self", "def", "class", "import", "from", "int",
    "void", "char", "unsigned", "#include", "#define", "switch", "case", "break", "true",
    "false", "None", "null", "try", "except", "async", "await", "yield", "enum", "type",
]
OPS = [" = ", " == ", " != ", " + ", " - ", " * ", " < ", " >= ", " && ", " || ", " += "]


def vocabulary(rng, n):
    syll = ["ka", "lo", "mi", "ne", "ru", "ta", "si", "po", "de", "an", "er", "in", "on",
            "st", "tr", "ch", "ma", "re", "co", "un", "pr", "ex", "ad", "id", "ve", "li"]
    words = set()
    while len(words) < n:
        w = "".join(rng.choice(syll) for _ in range(rng.randint(2, 4)))
        words.add(w)
    return sorted(words)


def identifiers(rng, vocab, n):
    out = []
    for _ in range(n):
        parts = [rng.choice(vocab) for _ in range(rng.randint(1, 3))]
        sep = rng.choice(["_", "_", ""])
        out.append(sep.join(parts) if sep else parts[0] + "".join(p.title() for p in parts[1:]))
    return out


class Text:
    """Source-like text: indented lines of keywords, a file's own identifiers (drawn with a
    skew, as real code repeats its names), literals and comments."""

    def __init__(self, rng):
        self.rng = rng
        self.vocab = vocabulary(rng, 3000)
        self.names = identifiers(rng, self.vocab, 20000)
        self.header = [
            "// Copyright 2023 The Example Authors. All rights reserved.",
            "// SPDX-License-Identifier: Apache-2.0",
            "",
        ]

    def line(self, local, depth):
        rng = self.rng
        r = rng.random()
        ind = "    " * depth
        if r < 0.12:
            return ""
        if r < 0.20:
            return ind + "}"
        if r < 0.30:
            words = rng.choices(self.vocab, k=rng.randint(3, 12))
            return ind + "// " + " ".join(words)
        a, b, c = rng.choices(local, k=3)
        if r < 0.45:
            return "%s%s %s%s%s(%s);" % (ind, rng.choice(KEYWORDS), a, rng.choice(OPS), b, c)
        if r < 0.60:
            return "%sif %s%s%d {" % (ind, a, rng.choice(OPS), rng.randint(0, 4096))
        if r < 0.75:
            return '%s%s.%s("%s %s", %s);' % (ind, a, b, rng.choice(self.vocab),
                                             rng.choice(self.vocab), c)
        if r < 0.85:
            return "%s%s %s(%s: %s, %s: %s) -> %s {" % (
                ind, rng.choice(KEYWORDS), a, b, rng.choice(KEYWORDS), c,
                rng.choice(KEYWORDS), rng.choice(KEYWORDS))
        return "%s%s%s%s.%s[%d];" % (ind, a, rng.choice(OPS), b, c, rng.randint(0, 64))

    def lines(self, n):
        rng = self.rng
        local = rng.choices(self.names, k=rng.randint(15, 60))
        out = list(self.header)
        depth = 0
        for _ in range(n):
            s = self.line(local, depth)
            out.append(s)
            if s.endswith("{"):
                depth = min(depth + 1, 5)
            elif s.endswith("}"):
                depth = max(depth - 1, 0)
        return out

    def file(self, size):
        return ("\n".join(self.lines(max(1, size // 38))) + "\n").encode()


def db_page(rng, vocab, number):
    """One 8 KiB page of a database image: a header, rows of mixed binary and text
    fields, zeroed free space; one page in four is random (compressed blobs)."""
    kind = rng.random()
    if kind < 0.25:
        return rng.randbytes(PAGE)
    if kind < 0.30:
        return bytes(PAGE)
    rows = []
    used = 24
    limit = int(PAGE * rng.uniform(0.55, 0.97))
    row_id = number * 64
    while True:
        row_id += 1
        text = "%s %s <%s@%s.example> %s" % (
            rng.choice(vocab), rng.choice(vocab), rng.choice(vocab), rng.choice(vocab),
            ("active", "closed", "pending", "archived")[rng.getrandbits(2)])
        row = struct.pack("<IIdq", row_id, rng.getrandbits(20), rng.random() * 1000,
                          BASE_TIME + rng.getrandbits(24)) + text.encode() + b"\0"
        if used + len(row) > limit:
            break
        rows.append(row)
        used += len(row)
    header = struct.pack("<QIIHHI", number * 7919, number, 0x5EED, 24, used, len(rows))
    body = header + b"".join(rows)
    return body + bytes(PAGE - len(body))


def sizes(rng, n, median, limit):
    return [max(40, min(limit, int(rng.lognormvariate(0, 1.0) * median))) for _ in range(n)]


def layout(scale):
    return {
        "sources": max(20, round(6000 * scale)),
        "random": max(1, round(24 * scale)),
        "db_pages": max(16, round(32768 * scale)),
        "media": max(1 << 16, int(64 * MIB * scale)),
    }


def write(path, data, mtime, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))


def source_paths(rng, n):
    exts = [".rs", ".c", ".h", ".py", ".go", ".js", ".md", ".toml"]
    out = []
    dirs = ["src/proj%02d/%s" % (i % 20, "mod%02d" % (i // 20)) for i in range(max(1, n // 20))]
    for i in range(n):
        d = dirs[i % len(dirs)]
        out.append("%s/file%04d%s" % (d, i, exts[rng.getrandbits(3)]))
    return out


def fix_dir_times(root, mtime):
    for d, _, _ in os.walk(root, topdown=False):
        os.utime(d, (mtime, mtime))


def generate(root, scale, seed):
    rng = random.Random(seed)
    lay = layout(scale)
    text = Text(random.Random(seed + 1))
    paths = source_paths(rng, lay["sources"])
    for i, (p, size) in enumerate(zip(paths, sizes(rng, len(paths), 6000, 400_000))):
        mode = 0o755 if i % 23 == 0 else (0o600 if i % 31 == 0 else 0o644)
        write(os.path.join(root, p), text.file(size), BASE_TIME - i * 97, mode)
    for i in range(lay["random"]):
        write(os.path.join(root, "blobs/rand%02d.bin" % i), rng.randbytes(4 * MIB),
              BASE_TIME - i * 3600)
    vocab = text.vocab
    os.makedirs(os.path.join(root, "db"), exist_ok=True)
    with open(os.path.join(root, "db/pg.img"), "wb") as f:
        for n in range(lay["db_pages"]):
            f.write(db_page(rng, vocab, n))
    os.utime(os.path.join(root, "db/pg.img"), (BASE_TIME, BASE_TIME))
    for i, name in enumerate(["media/video1.mp4", "media/video2.mkv"]):
        write(os.path.join(root, name), rng.randbytes(lay["media"]), BASE_TIME - 7 * 86400 * i)
    os.makedirs(os.path.join(root, "tmp/empty"), exist_ok=True)
    links = {"src/proj00/current": "mod00", "src/first-file": paths[0][len("src/"):],
             "blobs/db-link": "../db/pg.img", "tmp/dangling": "does/not/exist"}
    for name, target in links.items():
        os.symlink(target, os.path.join(root, name))
        os.utime(os.path.join(root, name), (BASE_TIME, BASE_TIME), follow_symlinks=False)
    fix_dir_times(root, BASE_TIME)


def edit(root, scale, seed):
    """A day of edits: 2 % of the source files changed, 0.5 % added, 0.3 % removed, a few
    made executable, 0.5 % of the database pages rewritten, one random file replaced."""
    rng = random.Random(seed + 2)
    text = Text(random.Random(seed + 3))
    lay = layout(scale)
    sources = sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, _, fs in os.walk(os.path.join(root, "src")) for f in fs
        if not os.path.islink(os.path.join(d, f)))
    touched = set()
    picks = rng.sample(sources, max(4, len(sources) // 50 + len(sources) // 300 + 3))
    n_edit = max(1, len(sources) // 50)
    for i, p in enumerate(picks[:n_edit]):
        path = os.path.join(root, p)
        with open(path, "rb") as f:
            lines = f.read().decode().split("\n")
        at = rng.randrange(len(lines))
        new = text.lines(rng.randint(1, 40))[3:]
        lines[at:at + rng.randint(0, 5)] = new
        write(path, "\n".join(lines).encode(), EDIT_TIME + i, os.stat(path).st_mode & 0o7777)
        touched.add(os.path.dirname(path))
    for p in picks[n_edit:n_edit + max(1, len(sources) // 300)]:
        os.unlink(os.path.join(root, p))
        touched.add(os.path.dirname(os.path.join(root, p)))
    for p in picks[-3:]:
        path = os.path.join(root, p)
        if os.path.exists(path):
            os.chmod(path, 0o755)
    for i in range(max(1, len(sources) // 200)):
        path = os.path.join(root, "src/proj%02d/new/added%03d.rs" % (i % 3, i))
        write(path, text.file(rng.randint(200, 20000)), EDIT_TIME + 600 + i)
        touched.add(os.path.dirname(path))
        touched.add(os.path.dirname(os.path.dirname(path)))
    db = os.path.join(root, "db/pg.img")
    with open(db, "r+b") as f:
        for n in sorted(rng.sample(range(lay["db_pages"]), max(2, lay["db_pages"] // 200))):
            f.seek(n * PAGE)
            f.write(db_page(rng, text.vocab, n))
    os.utime(db, (EDIT_TIME, EDIT_TIME))
    victim = rng.randrange(lay["random"])
    write(os.path.join(root, "blobs/rand%02d.bin" % victim), rng.randbytes(4 * MIB), EDIT_TIME)
    for d in sorted(touched, key=len, reverse=True):
        os.utime(d, (EDIT_TIME, EDIT_TIME))


def entries(root):
    """Relative path -> lstat of every entry under root (root itself as ".")."""
    out = {".": os.lstat(root)}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return out


def same_content(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(MIB), fb.read(MIB)
            if x != y:
                return False
            if not x:
                return True


def compare(src, dst, meta):
    a, b = entries(src), entries(dst)
    problems = ["missing: " + p for p in sorted(a.keys() - b.keys())]
    problems += ["extra: " + p for p in sorted(b.keys() - a.keys())]
    for p in sorted(a.keys() & b.keys()):
        sa, sb = a[p], b[p]
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            problems.append("type differs: " + p)
            continue
        if stat.S_ISLNK(sa.st_mode):
            ta, tb = os.readlink(os.path.join(src, p)), os.readlink(os.path.join(dst, p))
            if ta != tb:
                problems.append("link target %r != %r: %s" % (ta, tb, p))
            continue
        if stat.S_ISREG(sa.st_mode):
            if sa.st_size != sb.st_size:
                problems.append("size %d != %d: %s" % (sa.st_size, sb.st_size, p))
            elif not same_content(os.path.join(src, p), os.path.join(dst, p)):
                problems.append("content differs: " + p)
        if meta and p != ".":
            if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
                problems.append("mode %o != %o: %s" % (stat.S_IMODE(sa.st_mode),
                                                       stat.S_IMODE(sb.st_mode), p))
            if int(sa.st_mtime) != int(sb.st_mtime):
                problems.append("mtime %d != %d: %s" % (sa.st_mtime, sb.st_mtime, p))
    if problems:
        print("tree.py: %s differs from %s in %d entries:" % (dst, src, len(problems)),
              file=sys.stderr)
        for line in problems[:30]:
            print("  " + line, file=sys.stderr)
        return 1
    files = sum(1 for s in a.values() if stat.S_ISREG(s.st_mode))
    print("restore identical: %d entries, %d files%s" % (len(a), files,
                                                         ", modes and mtimes" if meta else ""))
    return 0


def kind(path):
    top = path.split(os.sep, 1)[0]
    return {"src": "source text", "blobs": "random 4 MiB", "db": "database image",
            "media": "media"}.get(top, "other")


def describe(root):
    classes = {}
    digest = hashlib.sha256()
    ent = entries(root)
    for p in sorted(ent):
        s = ent[p]
        digest.update(("%s %o %d %d\n" % (p, s.st_mode, int(s.st_mtime), s.st_size)).encode())
        full = os.path.join(root, p)
        if stat.S_ISLNK(s.st_mode):
            digest.update(os.readlink(full).encode())
            classes.setdefault("symlinks", [0, 0, 0])[0] += 1
            continue
        if not stat.S_ISREG(s.st_mode):
            continue
        c = classes.setdefault(kind(p), [0, 0, 0])
        comp = zlib.compressobj(6, zlib.DEFLATED, 31)
        with open(full, "rb") as f:
            while True:
                chunk = f.read(MIB)
                if not chunk:
                    break
                digest.update(chunk)
                c[2] += len(comp.compress(chunk))
        c[2] += len(comp.flush())
        c[0] += 1
        c[1] += s.st_size
    dirs = sum(1 for s in ent.values() if stat.S_ISDIR(s.st_mode))
    print("| class | files | MB | gzip -6 / size |")
    print("|---|---|---|---|")
    total = [0, 0, 0]
    for name, (n, size, comp) in sorted(classes.items()):
        ratio = "%.3f" % (comp / size) if size else "-"
        print("| %s | %d | %.1f | %s |" % (name, n, size / 1e6, ratio))
        total = [total[0] + n, total[1] + size, total[2] + comp]
    print("| all (%d folders) | %d | %.1f | %.3f |" % (dirs, total[0], total[1] / 1e6,
                                                       total[2] / max(1, total[1])))
    print("tree digest (paths, modes, mtimes, sizes, bytes): sha256 %s" % digest.hexdigest())


METRICS = [("wall", "wall s", "%.2f"), ("cpu", "CPU s (user+sys)", "%.2f"),
           ("rss", "peak RSS MiB", "%.0f"), ("stored", "stored MB", "%.1f")]


def table(results, title):
    """results: lines "group tool step wall cpu rss_kib stored_bytes" (stored "-" when not
    a backup), one per run; prints the medians and the ratios other / first tool."""
    data, tools, steps, groups = {}, [], [], []
    with open(results) as f:
        for line in f:
            g, tool, step, wall, cpu, rss, stored = line.split()
            for lst, v in ((groups, g), (tools, tool), (steps, step)):
                if v not in lst:
                    lst.append(v)
            vals = {"wall": float(wall), "cpu": float(cpu), "rss": int(rss) / 1024,
                    "stored": None if stored == "-" else int(stored) / 1e6}
            for m, v in vals.items():
                data.setdefault((g, tool, step, m), []).append(v)
    ref = tools[0]
    runs = max(len(v) for v in data.values())
    if title:
        print(title)
    print("Median of %d run%s; x = other tool / %s (above 1: %s is faster or smaller)."
          % (runs, "" if runs == 1 else "s", ref, ref))
    print()
    head = ["step", "metric"] + tools + ["%s / %s" % (t, ref) for t in tools[1:]]
    if len(groups) > 1:
        head.insert(0, "target")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for g in groups:
        for step in steps:
            for m, label, fmt in METRICS:
                vals = [data.get((g, t, step, m)) for t in tools]
                vals = [statistics.median(v) if v and None not in v else None for v in vals]
                if all(v is None for v in vals):
                    continue
                cells = [fmt % v if v is not None else "-" for v in vals]
                for v in vals[1:]:
                    ok = v is not None and vals[0]
                    cells.append("%.2fx" % (v / vals[0]) if ok else "-")
                row = [step, label] + cells
                if len(groups) > 1:
                    row.insert(0, g)
                print("| " + " | ".join(row) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["generate", "edit", "describe", "compare", "table"])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--meta", action="store_true", help="compare: also modes and mtimes")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    if a.scale <= 0 or a.scale > 100:
        ap.error("--scale must be above 0 and at most 100")
    if a.command in ("edit", "describe", "compare"):
        for path in a.paths:
            if not os.path.isdir(path):
                ap.error("%s is not a folder" % path)
    if a.command == "generate":
        if os.path.lexists(a.paths[0]):
            ap.error("%s exists: generate makes a new folder" % a.paths[0])
        generate(a.paths[0], a.scale, a.seed)
    elif a.command == "edit":
        edit(a.paths[0], a.scale, a.seed)
    elif a.command == "describe":
        describe(a.paths[0])
    elif a.command == "compare":
        if len(a.paths) != 2:
            ap.error("compare takes SOURCE and RESTORED")
        sys.exit(compare(a.paths[0], a.paths[1], a.meta))
    else:
        if not os.path.isfile(a.paths[0]) or not os.path.getsize(a.paths[0]):
            ap.error("%s: no results (a missing or empty file)" % a.paths[0])
        table(a.paths[0], a.title)


if __name__ == "__main__":
    main()
