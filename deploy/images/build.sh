#!/usr/bin/env bash
# Builds the MEAO and MEP images of deploy/images/Dockerfile with buildah (no Docker daemon,
# chroot isolation) and prints their names:
#   deploy/images/build.sh [TAG]          (default: the workspace version)
# The build stage's base is $MECPLANE_BUILD_IMAGE where a registry serves one (for example
# docker.io/library/rust:1.95-bookworm). Without it - this project's machines reach no container
# registry - a stand-in is made once from Debian packages: Debian bookworm (mmdebstrap) with the
# C toolchain, pkg-config and the OpenSSL and zlib headers; this machine's Rust toolchain is
# mounted read-only at /usr/local/rust, and this machine's CA bundle at /run/host-ca.crt for
# cargo's downloads only (the images get Debian's CA certificates).
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-$(awk -F'"' '/^version *=/ {print $2; exit}' Cargo.toml)}
args=(--layers --format docker --isolation chroot -f deploy/images/Dockerfile)
if [ -n "${MECPLANE_BUILD_IMAGE:-}" ]; then
  args+=(--build-arg "BUILD_IMAGE=$MECPLANE_BUILD_IMAGE")
else
  packages=build-essential,pkg-config,libssl-dev,zlib1g-dev,ca-certificates
  base=localhost/mecplane/build-base:bookworm-$(echo "$packages" | sha256sum | cut -c1-12)
  if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
    start=$(date +%s)
    tmp=$(mktemp -d /tmp/mecplane-rootfs.XXXXXX)
    mmdebstrap --quiet --variant=minbase --include="$packages" bookworm "$tmp/rootfs.tar" >&2
    ctr=$(buildah from scratch)
    buildah add --quiet "$ctr" "$tmp/rootfs.tar" / >/dev/null
    rm -rf "$tmp"
    buildah config --env PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env CARGO_HOME=/usr/local/cargo --env CARGO_HTTP_CAINFO=/run/host-ca.crt "$ctr"
    buildah commit --rm --quiet "$ctr" "$base" >/dev/null
    echo "images: made the build base $base from Debian packages in $(( $(date +%s) - start )) s" >&2
  fi
  args+=(--build-arg "BUILD_IMAGE=$base"
         --volume "$(rustc --print sysroot):/usr/local/rust:ro"
         --volume "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}:/run/host-ca.crt:ro")
fi
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for target in meao mep; do
  start=$(date +%s)
  buildah build "${args[@]}" --target "$target" --build-arg "VERSION=$tag" \
    --build-arg "REVISION=$revision" --build-arg "CREATED=$created" \
    -t "localhost/mecplane/$target:$tag" . >&2
  echo "images: built localhost/mecplane/$target:$tag in $(( $(date +%s) - start )) s" >&2
  echo "localhost/mecplane/$target:$tag"
done
