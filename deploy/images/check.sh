#!/usr/bin/env bash
# Checks the images deploy/images/build.sh built, without a Docker daemon (buildah):
# each runs as the non-root user 65532, has its OCI labels and health check, and holds nothing
# but its binary, the libraries it links, CA certificates and its data directory (no shell);
# then the MEAO image's binary runs: --help, and a real start-up on a loopback port
# (MECPLANE_IMAGE_PORT, default 28080) whose /healthz answers both from outside and to the
# image's own health check command.
#   deploy/images/check.sh MEAO_IMAGE MEP_IMAGE
set -euo pipefail
meao=$1 mep=$2
port=${MECPLANE_IMAGE_PORT:-28080}
ctrs=()
pid=""
cleanup() {
  [ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; } || true
  for c in "${ctrs[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
for image in "$meao" "$mep"; do
  service=$(basename "${image%%:*}")
  buildah inspect --type image "$image" | python3 -c '
import json, sys
service, config = sys.argv[1], json.load(sys.stdin)["Docker"]["config"]
assert config["User"] == "65532:65532", config["User"]
assert config["Entrypoint"] == [f"/usr/local/bin/{service}"], config["Entrypoint"]
assert config["Healthcheck"]["Test"][:3] == ["CMD", f"/usr/local/bin/{service}", "healthcheck"], config["Healthcheck"]
labels = config["Labels"]
for key in ("title", "description", "version", "revision", "created", "licenses"):
    assert labels.get(f"org.opencontainers.image.{key}"), key
version = labels["org.opencontainers.image.version"] + " " + labels["org.opencontainers.image.revision"]
print(f"images: {service}: user 65532, health check, OCI labels ({version})")
' "$service"
  ctr=$(buildah from "$image"); ctrs+=("$ctr")
  root=$(buildah mount "$ctr")
  files=$(cd "$root" && find . -type f -o -type l | sort)
  unexpected=$(echo "$files" | grep -vE "^\./(usr/local/bin/$service|lib64/ld-linux-x86-64\.so\.2|lib/x86_64-linux-gnu/[^/]+\.so[.0-9]*|usr/lib/x86_64-linux-gnu/[^/]+\.so[.0-9]*|etc/(passwd|group)|etc/ssl/certs/ca-certificates\.crt)$" || true)
  [ -z "$unexpected" ] || { echo "images: $service holds more than its binary and libraries:"; echo "$unexpected"; exit 1; }
  [ "$(stat -c %u "$root/var/lib/mecplane")" = 65532 ] || { echo "images: /var/lib/mecplane is not the user's"; exit 1; }
  echo "images: $service: $(echo "$files" | wc -l) files, $(du -sh "$root" | cut -f1): $(echo "$files" | tr '\n' ' ')"
  buildah umount "$ctr" >/dev/null
done

# the MEAO's binary in its image: --help, then a real start-up answering /healthz
ctr=${ctrs[0]}
buildah run --isolation chroot "$ctr" -- /usr/local/bin/meao --help | head -3
buildah run --isolation chroot --env "MEAO__LISTEN=127.0.0.1:$port" "$ctr" -- /usr/local/bin/meao &
pid=$!
for _ in $(seq 240); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "images: the MEAO exited"; exit 1; }
  sleep 0.25
done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "images: /healthz did not answer"; exit 1; }
buildah run --isolation chroot "$ctr" -- /usr/local/bin/meao healthcheck "http://127.0.0.1:$port/healthz"
echo "images: the MEAO in $meao started and answers /healthz (from outside and to its health check)"
