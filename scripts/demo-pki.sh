#!/usr/bin/env bash
# Creates the demo's PKI in DIR once: a CA and the certificates of the MEAO and of site paris-1
# (the MEAO-MEP link is mutual TLS), as deploy/examples/meao.toml and mep.toml name them.
set -euo pipefail
pki=$1
[ -f "$pki/paris-1.pem" ] && exit 0
mkdir -p "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=mecplane demo CA" \
  -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
for cn in meao paris-1; do
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$pki/$cn.key" -out "$pki/$cn.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$cn.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial -days 825 \
    -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n') \
    -out "$pki/$cn.pem" 2>/dev/null
done
