"""The demo model's training text: Jane Austen's six novels, as shipped by Debian's r-cran-janeaustenr.

Debian's package `r-cran-janeaustenr` (version 1.0.0-1, MIT licence; the novels themselves are in the
public domain: Project Gutenberg texts of books published 1811-1818) installs the novels as an R
lazy-load database, `/usr/lib/R/site-library/janeaustenr/data/Rdata.{rdx,rdb}`: one character vector per
novel, one element per line of the Gutenberg text. This module finds those two files, reads them without
R (a small reader for R's XDR serialization format, enough for character vectors), checks their SHA-256
against the pinned package version, and turns the lines into paragraphs.

Where the files come from, in order:
  1. `--austen-dir DIR` (a folder holding Rdata.rdx and Rdata.rdb);
  2. the installed package (`apt-get install r-cran-janeaustenr`; `dpkg -L` gives the path);
  3. the package file itself: `apt-get download r-cran-janeaustenr=1.0.0-1` into a cache folder
     (no root, no R needed), read in place (ar archive -> data.tar.xz -> the two files).
"""

import gzip
import hashlib
import io
import lzma
import bz2
import os
import re
import shutil
import struct
import subprocess
import tarfile
import unicodedata
import zlib
from pathlib import Path

DEB_NAME = "r-cran-janeaustenr"
DEB_VERSION = "1.0.0-1"
DEB_SHA256 = "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"
RDATA_SHA256 = {
    "Rdata.rdx": "cab8cbe4ce965d3b42b35c03383bafccc0eb78151f70e4748ead45270470c22f",
    "Rdata.rdb": "8fb5198960d0da724b1562f96e4221e5c1b41ff455000280b02c55980c3d8f21",
}
INSTALLED_DIR = Path("/usr/lib/R/site-library/janeaustenr/data")

# Publication order. The held-out slice is cut from the end of the last one.
NOVELS = [
    ("sensesensibility", "Sense and Sensibility", 1811),
    ("prideprejudice", "Pride and Prejudice", 1813),
    ("mansfieldpark", "Mansfield Park", 1814),
    ("emma", "Emma", 1815),
    ("northangerabbey", "Northanger Abbey", 1817),
    ("persuasion", "Persuasion", 1817),
]


# --------------------------------------------------------------------------------------------------
# Finding the package's files
# --------------------------------------------------------------------------------------------------


def _sha256(b):
    return hashlib.sha256(b).hexdigest()


def _check(files, where):
    for name, want in RDATA_SHA256.items():
        got = _sha256(files[name])
        if got != want:
            raise SystemExit(
                f"{where}/{name}: SHA-256 {got} is not that of {DEB_NAME} {DEB_VERSION} ({want}); "
                "another package version would give another training text"
            )
    return files


def _from_dir(d):
    d = Path(d)
    return _check({n: (d / n).read_bytes() for n in RDATA_SHA256}, str(d))


def _installed_dir():
    try:
        out = subprocess.run(["dpkg", "-L", DEB_NAME], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return INSTALLED_DIR if (INSTALLED_DIR / "Rdata.rdb").exists() else None
    for line in out.splitlines():
        if line.endswith("/data/Rdata.rdb"):
            return Path(line).parent
    return None


def _read_deb(path):
    """The two data files from the .deb (an ar archive whose data.tar.xz holds the installed tree)."""
    blob = Path(path).read_bytes()
    if _sha256(blob) != DEB_SHA256:
        raise SystemExit(f"{path}: not {DEB_NAME}_{DEB_VERSION}_all.deb (SHA-256 {_sha256(blob)})")
    assert blob[:8] == b"!<arch>\n", f"{path}: not an ar archive"
    pos, data = 8, None
    while pos < len(blob):
        name = blob[pos:pos + 16].decode().strip().rstrip("/")
        size = int(blob[pos + 48:pos + 58].decode().strip())
        body = blob[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            data = body
        pos += 60 + size + (size & 1)
    assert data is not None, f"{path}: no data.tar member"
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar.getmembers():
            base = os.path.basename(member.name)
            if base in RDATA_SHA256 and "/janeaustenr/data/" in member.name:
                files[base] = tar.extractfile(member).read()
    return _check(files, f"{path}:data.tar")


def _download_deb(cache):
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    deb = cache / f"{DEB_NAME}_{DEB_VERSION}_all.deb"
    if not deb.exists():
        if shutil.which("apt-get") is None:
            raise SystemExit(f"no apt-get: install {DEB_NAME} {DEB_VERSION} or pass --austen-dir / --austen-deb")
        print(f"fetching {DEB_NAME}={DEB_VERSION} with apt-get download into {cache}", flush=True)
        subprocess.run(["apt-get", "download", f"{DEB_NAME}={DEB_VERSION}"], cwd=cache, check=True)
    return deb


def load_rdata_files(austen_dir=None, austen_deb=None, cache=None):
    """Returns ({'Rdata.rdx': bytes, 'Rdata.rdb': bytes}, description of where they came from)."""
    if austen_dir:
        return _from_dir(austen_dir), f"{austen_dir}"
    if austen_deb:
        return _read_deb(austen_deb), f"{austen_deb}"
    d = _installed_dir()
    if d is not None:
        return _from_dir(d), f"installed {DEB_NAME} ({d})"
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ferrollm-demo"
    deb = _download_deb(cache)
    return _read_deb(deb), f"{deb}"


# --------------------------------------------------------------------------------------------------
# R's serialization format (XDR, versions 2 and 3): only what a lazy-load database of character
# vectors needs. https://cran.r-project.org/doc/manuals/r-release/R-ints.html#Serialization-Formats
# --------------------------------------------------------------------------------------------------

NILVALUE, REFSXP = 254, 255
SPECIALS = {253, 252, 251, 247, 242, 241}  # globalenv, unbound, missing, base namespace, empty/base env
SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP = 1, 2, 9, 10, 13, 14, 16, 19


class _Reader:
    def __init__(self, data):
        self.b, self.p, self.refs = data, 0, []

    def int(self):
        (v,) = struct.unpack_from(">i", self.b, self.p)
        self.p += 4
        return v

    def raw(self, n):
        v = self.b[self.p:self.p + n]
        self.p += n
        return v

    def header(self):
        if self.raw(2) != b"X\n":
            raise ValueError("not an XDR-format R serialization")
        version = self.int()
        self.int(), self.int()  # writer's R version, minimal reader version
        if version == 3:
            self.raw(self.int())  # native encoding name
        elif version != 2:
            raise ValueError(f"R serialization version {version}")

    def length(self):
        n = self.int()
        if n == -1:
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == NILVALUE:
            return None
        if kind == REFSXP:
            return self.refs[(flags >> 8) - 1]
        if kind in SPECIALS:
            return ("special", kind)
        if kind == SYMSXP:
            sym = ("symbol", self.item())
            self.refs.append(sym)
            return sym
        if kind == LISTSXP:  # a pairlist: [(tag, value), ...]
            out = []
            while True:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else None
                out.append((tag[1] if tag else None, self.item()))
                flags = self.int()
                if flags & 0xFF == NILVALUE:
                    return dict(out) if all(t is not None for t, _ in out) else out
                if flags & 0xFF != LISTSXP:
                    raise ValueError(f"pairlist continues with type {flags & 0xFF}")
                has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
        if kind == CHARSXP:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            # levels bits: 1<<2 latin-1, 1<<3 UTF-8, 1<<6 ASCII; unmarked strings are taken as UTF-8.
            levels = flags >> 12
            enc = "latin-1" if levels & (1 << 2) else "utf-8"
            return self.raw(n).decode(enc)
        if kind in (LGLSXP, INTSXP):
            n = self.length()
            value = list(struct.unpack_from(f">{n}i", self.b, self.p))
            self.p += 4 * n
        elif kind == REALSXP:
            n = self.length()
            value = list(struct.unpack_from(f">{n}d", self.b, self.p))
            self.p += 8 * n
        elif kind in (STRSXP, VECSXP):
            value = [self.item() for _ in range(self.length())]
        else:
            raise ValueError(f"R object type {kind} is not supported by this reader")
        attrs = self.item() if has_attr else None
        if isinstance(attrs, dict) and "names" in attrs:
            return dict(zip(attrs["names"], value))
        return value


def unserialize(data):
    r = _Reader(data)
    r.header()
    return r.item()


def _lazyload_blob(blob):
    """One entry of an .rdb file: 4-byte big-endian uncompressed length, then zlib data (R's default),
    or a type byte ('Z' xz, '2' bzip2, '0' none) and the data."""
    (n,) = struct.unpack(">I", blob[:4])
    kind = blob[4:5]
    if kind == b"Z":
        out = lzma.decompress(blob[5:])
    elif kind == b"2":
        out = bz2.decompress(blob[5:])
    elif kind == b"0":
        out = blob[5:]
    else:
        out = zlib.decompress(blob[4:])
    assert len(out) == n, "lazy-load entry has the wrong length"
    return out


def read_novels(files):
    """{variable name: [line, ...]} from the lazy-load database."""
    index = unserialize(gzip.decompress(files["Rdata.rdx"]))
    assert index["compressed"] == [1], index["compressed"]
    rdb = files["Rdata.rdb"]
    out = {}
    for name, (offset, length) in index["variables"].items():
        out[name] = unserialize(_lazyload_blob(rdb[offset:offset + length]))
    return out


# --------------------------------------------------------------------------------------------------
# Lines -> paragraphs
# --------------------------------------------------------------------------------------------------


def paragraphs(lines):
    """Joins the hard-wrapped lines of each paragraph (paragraphs are separated by blank lines), drops
    the underscores Project Gutenberg uses for italics, collapses runs of spaces, applies NFC."""
    paras, cur = [], []
    for line in lines + [""]:
        line = (line or "").strip()
        if line:
            cur.append(line)
        elif cur:
            text = " ".join(cur).replace("_", "")
            text = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()
            if text:
                paras.append(text)
            cur = []
    return paras


def load_books(**kw):
    """[(title, year, [paragraph, ...])] in publication order, and where the files came from."""
    files, where = load_rdata_files(**kw)
    novels = read_novels(files)
    assert sorted(novels) == sorted(n for n, _, _ in NOVELS), sorted(novels)
    return [(title, year, paragraphs(novels[name])) for name, title, year in NOVELS], where
