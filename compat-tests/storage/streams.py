#!/usr/bin/python3
"""python3-libvirt volume streams against oxvirtd: an upload and a
download checked by SHA-256, and an upload cut halfway (the stream is
aborted), after which the pool and the daemon still work.

usage: streams.py URI POOL TMPDIR
"""
import hashlib
import os
import sys

import libvirt

uri, pool_name, tmp = sys.argv[1], sys.argv[2], sys.argv[3]
conn = libvirt.open(uri)
pool = conn.storagePoolLookupByName(pool_name)

size = 4 * 1024 * 1024
data = os.urandom(size)
vol = pool.createXML(
    "<volume><name>py.raw</name><capacity>%d</capacity>"
    "<allocation>0</allocation></volume>" % size,
    0,
)

# Upload in uneven pieces, then finish: the data must be on disk.
st = conn.newStream(0)
vol.upload(st, 0, size, 0)
off = 0
step = 100_003
while off < size:
    st.send(data[off : off + step])
    off += step
st.finish()
want = hashlib.sha256(data).hexdigest()
with open(vol.path(), "rb") as f:
    on_disk = hashlib.sha256(f.read()).hexdigest()
assert on_disk == want, ("upload", on_disk, want)
print("upload sha256 ok", want[:16])

# Download the whole volume back through a stream.
st = conn.newStream(0)
vol.download(st, 0, 0, 0)
got = bytearray()
while True:
    chunk = st.recv(262144)
    if chunk in (-2, None):
        continue
    if len(chunk) == 0:
        break
    got += chunk
st.finish()
assert hashlib.sha256(bytes(got)).hexdigest() == want, "download"
print("download sha256 ok", len(got))

# An upload cut halfway: the client aborts; the volume keeps what
# arrived, stays usable and deletable, and the daemon answers.
st = conn.newStream(0)
vol.upload(st, 0, size, 0)
st.send(b"\xff" * (size // 2))
st.abort()
info = vol.info()
assert info[1] == size, info
pool.refresh(0)
assert "py.raw" in pool.listVolumes()
vol.delete(0)
assert "py.raw" not in pool.listVolumes()
assert conn.listAllStoragePools(0)
print("cut upload left a usable volume; deleted")
