#!/bin/sh
# Start-up probe of the GPU image: `detq info --json` must show the engine this container is set to
# run (DETQ_ENGINE) as available, else the container stops at once with the reason (no GPU passed
# through, driver too old, addon built without it) instead of failing every job later.
set -eu
info=$(node apps/cli/bin/detq.js info --json)
printf '%s\n' "$info" >&2
engine=${DETQ_ENGINE:-tensorrt}
if [ "$engine" = tensorrt ] || [ "$engine" = torch ]; then
  printf '%s' "$info" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const e = JSON.parse(s).engines.find((x) => x.kind === process.argv[1]);
      if (e && e.available) process.exit(0);
      console.error(`detq: engine ${process.argv[1]} is not available here: ${e ? e.reason : "unknown engine"}`);
      process.exit(6);
    });' "$engine"
fi
exec node apps/cli/bin/detq.js "$@"
