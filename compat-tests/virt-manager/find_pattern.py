#!/usr/bin/python3
"""Find the test guest's 640x480 pattern (compat-tests/guest/testos, README
"Display and input") in a screenshot of the whole screen and compare it.

usage: find_pattern.py SHOT.png [HINT_X HINT_Y]

The screenshot is read through ImageMagick (`convert SHOT.png ppm:-`). The
pattern's top left corner is searched for everywhere on the screen (the
HINT, where the gtk-vnc widget says it draws, is tried first): a black
pixel with the pattern's own colours 32, 64 and 639 columns to its right
and 479 rows below. There, a 41x31 grid of sample points (every 16th
column and row, plus the last ones) and then every pixel are compared with
the formula, exactly: the console is not scaled (virt-manager's console
scaling is "never") and Xvfb's 24-bit screen keeps the guest's colours.

Prints one line: "found at X,Y: G/G grid points, P/307200 pixels match"
(first mismatches after it) and exits 0 when all match; "not found ..."
and exit 1 otherwise.
"""
import subprocess
import sys

W, H = 640, 480


def pattern(x, y):
    return (x * 255 // (W - 1), y * 255 // (H - 1), 0xFF if ((x >> 5) ^ (y >> 5)) & 1 else 0)


def read_ppm(path):
    data = subprocess.run(["convert", path, "-depth", "8", "ppm:-"], check=True,
                          capture_output=True).stdout
    # P6 header: magic, width, height, maxval, one whitespace byte.
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        start = pos
        while not data[pos:pos + 1].isspace():
            pos += 1
        fields.append(data[start:pos])
    if fields[0] != b"P6" or fields[3] != b"255":
        raise SystemExit("not an 8-bit PPM: %r" % fields)
    return int(fields[1]), int(fields[2]), data[pos + 1:]


def main():
    if len(sys.argv) not in (2, 4):
        raise SystemExit(__doc__)
    sw, sh, px = read_ppm(sys.argv[1])

    def at(x, y):
        i = (y * sw + x) * 3
        return tuple(px[i:i + 3])

    anchors = [(0, 0), (32, 0), (64, 0), (0, 32), (W - 1, 0), (0, H - 1), (W - 1, H - 1)]

    def corner(x, y):
        return (x + W <= sw and y + H <= sh and
                all(at(x + ax, y + ay) == pattern(ax, ay) for ax, ay in anchors))

    found = None
    if len(sys.argv) == 4:
        hx, hy = int(sys.argv[2]), int(sys.argv[3])
        for dy in range(-8, 9):
            for dx in range(-8, 9):
                if 0 <= hx + dx and 0 <= hy + dy and corner(hx + dx, hy + dy):
                    found = (hx + dx, hy + dy)
                    break
            if found:
                break
    if not found:
        for y in range(0, sh - H + 1):
            row = y * sw * 3
            for x in range(0, sw - W + 1):
                i = row + x * 3
                if px[i] == 0 and px[i + 1] == 0 and px[i + 2] == 0 and corner(x, y):
                    found = (x, y)
                    break
            if found:
                break
    if not found:
        print("not found: no %dx%d region of the guest's pattern on the %dx%d screen" % (W, H, sw, sh))
        return 1
    ox, oy = found
    grid = [(x, y) for y in list(range(0, H, 16)) + [H - 1] for x in list(range(0, W, 16)) + [W - 1]]
    grid_ok = sum(1 for x, y in grid if at(ox + x, oy + y) == pattern(x, y))
    bad = []
    for y in range(H):
        for x in range(W):
            if at(ox + x, oy + y) != pattern(x, y):
                bad.append((x, y))
    print("found at %d,%d: %d/%d grid points, %d/%d pixels match%s" % (
        ox, oy, grid_ok, len(grid), W * H - len(bad), W * H,
        "; first mismatches (x, y, got, want): %s" % [
            (x, y, at(ox + x, oy + y), pattern(x, y)) for x, y in bad[:4]] if bad else ""))
    return 0 if not bad and grid_ok == len(grid) else 1


if __name__ == "__main__":
    sys.exit(main())
