#!/bin/sh
# rootfs.sh BINARY OUT: the whole root file system of an image running BINARY, built in the
# image's build stage: the binary in /usr/local/bin (debug info stripped), exactly the shared libraries it links and
# the dynamic loader (as ldd finds them in the build stage), the CA certificates, a non-root
# user mecplane (65532) and /tmp. Nothing else: no shell, no package manager.
set -eu
bin=$1 out=$2
install -D -m 0755 "$bin" "$out/usr/local/bin/$(basename "$bin")"
strip --strip-debug "$out/usr/local/bin/$(basename "$bin")"
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
  while read -r lib; do cp -L --parents "$lib" "$out"; done
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nmecplane:x:65532:65532:mecplane:/var/lib/mecplane:/sbin/nologin\n' \
  > "$out/etc/passwd"
printf 'root:x:0:\nmecplane:x:65532:\n' > "$out/etc/group"
install -d -m 1777 "$out/tmp"
