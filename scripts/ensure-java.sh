#!/usr/bin/env bash
# Spark needs a Java runtime (17 or later). Install Debian's OpenJDK when none is found.
set -euo pipefail
if command -v java >/dev/null 2>&1 && java -version 2>&1 | grep -Eq 'version "(1[7-9]|2[0-9])'; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Spark needs Java 17+; install it (e.g. apt-get install openjdk-17-jre-headless) and retry" >&2
  exit 1
fi
echo "installing a Java runtime for Spark (openjdk-17-jre-headless)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq openjdk-17-jre-headless >/dev/null
java -version
