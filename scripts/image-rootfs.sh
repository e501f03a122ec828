#!/usr/bin/env bash
# Lay out the action image's root filesystem: the executor binary, exactly
# the shared libraries it loads (from ldd, dynamic loader included), a
# passwd/group naming the unprivileged user 10001, and an empty /tmp. Used by
# `just image` (buildah, offline) and by the Dockerfile, so both produce the
# same layout:
#   /usr/local/bin/ow-executor
#   /lib/x86_64-linux-gnu/*.so.*, /lib64/ld-linux-x86-64.so.2 (as ldd names them)
#   /etc/passwd, /etc/group   (ow:x:10001:10001)
#   /etc/ssl/certs/ca-certificates.crt (the build host's CA bundle, if any)
#   /tmp                      (mode 1777; the scratch parent by default)
# Usage: scripts/image-rootfs.sh BINARY OUTDIR [NAME]
# (NAME, default ow-executor: the file name under /usr/local/bin; the
# benchmark builds a Node.js image the same way.)
set -euo pipefail

binary=$1
out=$2
name=${3:-ow-executor}
[ -x "$binary" ] || { echo "image-rootfs: $binary is not an executable" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/usr/local/bin" "$out/etc" "$out/tmp"
chmod 1777 "$out/tmp"
install -m 0755 "$binary" "$out/usr/local/bin/$name"

# Every library ldd resolves, at the same path inside the image (symlinks
# followed: the file itself is copied under the name the loader asks for).
libs=$(ldd "$binary" | awk '/=> \// { print $3 } /^[ \t]*\/[^ ]+ \(/ { print $1 }')
[ -n "$libs" ] || { echo "image-rootfs: ldd found no libraries for $binary" >&2; exit 1; }
for lib in $libs; do
    mkdir -p "$out$(dirname "$lib")"
    cp -L "$lib" "$out$lib"
done

# The CA certificates, for calls of actions over https (the OpenWhisk API,
# peer executors): Debian's bundle, where the executor's TLS stack looks.
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$out/etc/ssl/certs"
    cp -L /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-certificates.crt"
fi

echo 'ow:x:10001:10001:ow-executor:/nonexistent:/usr/sbin/nologin' >"$out/etc/passwd"
echo 'ow:x:10001:' >"$out/etc/group"
echo "image-rootfs: $(du -sh "$out" | cut -f1) in $out ($(echo "$libs" | wc -w) libraries)" >&2
