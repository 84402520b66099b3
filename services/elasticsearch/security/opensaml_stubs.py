"""Java sources of empty stand-ins for the OpenSAML/Shibboleth types x-pack-security's classes name.

x-pack-security needs OpenSAML 4 (published on Shibboleth's repository only, not on Maven Central) as Java modules,
and the node builds every transport action, SAML ones included, by reflection: each type in their signatures must
load. This reads the security jar's class files and writes, under OUT/src, one empty public class or interface per
OpenSAML/Shibboleth type they reference (interface when used as one), and a module-info exporting their packages.
The node runs without remote bytecode verification (es.sh), so the stand-ins need no members; a SAML realm cannot
work on it and is never configured.

    python3 opensaml_stubs.py <x-pack-security.jar> <out dir> <module name>
"""

from __future__ import annotations

import re
import struct
import sys
import zipfile
from pathlib import Path

_PREFIXES = (b"org/opensaml/", b"net/shibboleth/")
_NAME = re.compile(rb"(?:org/opensaml|net/shibboleth)/[A-Za-z0-9_/$]+")


def _constant_pool(data: bytes) -> tuple[list[object], int]:
    count = struct.unpack_from(">H", data, 8)[0]
    pool: list[object] = [None] * count
    i, pos = 1, 10
    while i < count:
        tag = data[pos]
        if tag == 1:
            n = struct.unpack_from(">H", data, pos + 1)[0]
            pool[i] = ("utf8", data[pos + 3 : pos + 3 + n])
            pos += 3 + n
        elif tag in (7, 8, 16, 19, 20):
            pool[i] = (tag, struct.unpack_from(">H", data, pos + 1)[0])
            pos += 3
        elif tag == 15:
            pos += 4
        elif tag in (3, 4):
            pos += 5
        elif tag in (5, 6):
            pos += 9
            i += 1
        elif tag in (9, 10, 11, 12, 17, 18):
            pool[i] = (tag, struct.unpack_from(">HH", data, pos + 1))
            pos += 5
        else:
            raise ValueError(f"constant pool tag {tag}")
        i += 1
    return pool, pos


def scan(jar: Path) -> tuple[set[str], set[str]]:
    """(every referenced OpenSAML/Shibboleth type, those used as interfaces)."""
    names: set[str] = set()
    interfaces: set[str] = set()
    with zipfile.ZipFile(jar) as z:
        for entry in z.namelist():
            if not entry.endswith(".class") or entry.endswith("module-info.class"):
                continue
            data = z.read(entry)
            pool, pos = _constant_pool(data)

            def cls(idx: int) -> bytes:
                return pool[pool[idx][1]][1]  # type: ignore[index]

            for item in pool:
                if item and item[0] == "utf8":
                    names.update(m.decode() for m in _NAME.findall(item[1]))  # type: ignore[arg-type]
                elif item and item[0] == 11:  # InterfaceMethodref
                    interfaces.add(cls(item[1][0]).decode())  # type: ignore[index]
            n_ifaces = struct.unpack_from(">H", data, pos + 6)[0]
            for k in range(n_ifaces):
                interfaces.add(cls(struct.unpack_from(">H", data, pos + 8 + 2 * k)[0]).decode())
    names = {n for n in names if n.encode().startswith(_PREFIXES) and not n.endswith("/")}
    return names, {n for n in interfaces if n in names}


def main(argv: list[str]) -> int:
    """Write the stand-in sources; print how many types."""
    jar, out, module = Path(argv[1]), Path(argv[2]), argv[3]
    names, interfaces = scan(jar)
    src = out / "src"
    packages = set()
    for name in sorted(names):
        pkg, _, simple = name.rpartition("/")
        packages.add(pkg.replace("/", "."))
        kind = "interface" if name in interfaces else "class"
        path = src / pkg / f"{simple}.java"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"package {pkg.replace('/', '.')};\n\npublic {kind} {simple} {{}}\n", encoding="utf-8")
    exports = "".join(f"    exports {p};\n" for p in sorted(packages))
    (src / "module-info.java").write_text(f"module {module} {{\n{exports}}}\n", encoding="utf-8")
    print(f"{len(names)} types in {len(packages)} packages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
