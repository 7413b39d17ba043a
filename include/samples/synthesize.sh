#!/usr/bin/env bash
# Regenerates the sample dictations (mp3) from dictations.tsv: id, espeak-ng voice, text.
set -euo pipefail
cd "$(dirname "$0")"
while IFS=$'\t' read -r id voice text; do
  espeak-ng -v "$voice" -s 155 -w "/tmp/$id.wav" "$text"
  sox "/tmp/$id.wav" -r 16000 -c 1 -C 48 "$id.mp3"
  rm "/tmp/$id.wav"
done < dictations.tsv
