#!/usr/bin/env python3
"""Writes and verifies testos's disk pattern.

The 8-byte little-endian word at byte offset B (B a multiple of 8) holds
(B // 8) ^ 0x6f78766972740000; sectors that testos's write test wrote hold
(B // 8) ^ 0x6f78777269746521 instead.

  make-pattern-disk.py write FILE SECTORS [--garbage FIRST:COUNT ...] [--written F:C]
                        [--zero F:C]
      create FILE (raw) with SECTORS 512-byte sectors of the pattern; --garbage fills
      sectors with 0xEE instead (for a backing file whose top layer supplies them);
      --written uses the write-test key there, --zero zeroes (the expected image after
      the write and write-zeroes tests)
  make-pattern-disk.py sectors FIRST COUNT
      write the pattern of those sectors to stdout (to feed qemu-io or dd)
  make-pattern-disk.py verify FILE [--written FIRST:COUNT] [--zero FIRST:COUNT]
      check every sector of a raw FILE; exit 1 on the first mismatch
"""
import struct
import sys

KEY = 0x6F78766972740000
WRITE_KEY = 0x6F78777269746521


def sector(n, key=KEY):
    w0 = n * 64
    return struct.pack("<64Q", *[(w0 + i) ^ key for i in range(64)])


def ranges(args, flag):
    out = []
    for i, a in enumerate(args):
        if a == flag:
            first, count = args[i + 1].split(":")
            out.append((int(first), int(count)))
    return out


def main(argv):
    if len(argv) >= 3 and argv[0] == "write":
        path, n = argv[1], int(argv[2])
        garbage = ranges(argv, "--garbage")
        written = ranges(argv, "--written")
        zero = ranges(argv, "--zero")
        with open(path, "wb") as f:
            for s in range(n):
                if any(a <= s < a + c for a, c in zero):
                    f.write(bytes(512))
                elif any(a <= s < a + c for a, c in garbage):
                    f.write(b"\xee" * 512)
                elif any(a <= s < a + c for a, c in written):
                    f.write(sector(s, WRITE_KEY))
                else:
                    f.write(sector(s))
        return 0
    if len(argv) == 3 and argv[0] == "sectors":
        first, count = int(argv[1]), int(argv[2])
        out = sys.stdout.buffer
        for s in range(first, first + count):
            out.write(sector(s))
        return 0
    if len(argv) >= 2 and argv[0] == "verify":
        written = ranges(argv, "--written")
        zero = ranges(argv, "--zero")
        with open(argv[1], "rb") as f:
            data = f.read()
        for s in range(len(data) // 512):
            key = WRITE_KEY if any(a <= s < a + c for a, c in written) else KEY
            want = bytes(512) if any(a <= s < a + c for a, c in zero) else sector(s, key)
            if data[s * 512:(s + 1) * 512] != want:
                print(f"verify {argv[1]}: sector {s} differs (key {key:#x})")
                return 1
        print(f"verify {argv[1]}: {len(data) // 512} sectors ok")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
