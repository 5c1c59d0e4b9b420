// The install script of a node brought by its owner (`weft node install-script`) and of an EC2
// node (its user data): a POSIX sh script that installs weft's prerequisites and weft itself,
// writes weft.service and starts the peer so that it joins the mesh with its name and tags. Pure:
// the text depends only on the input, so the same node gets the same script (EC2 refuses a
// repeated RunInstances whose user data differs).
//
// What the script may be given is checked here, and refused rather than escaped where a value
// lands in more than one language (sh, a systemd unit, a weft flag): names and tags are limited
// to characters none of them treats specially. Everything that reaches sh is single-quoted as
// well, so a check that someone loosens later still cannot inject a command.
//
// The join token is the mesh key: it never appears on a command line (the process list is
// readable by every user of the host). Fetched, curl writes it straight into a 0600 file;
// embedded (user data, itself secret), a here-document gives it to `cat` on its standard input.

/** A node's name becomes a DNS label (mesh/membership/wire.ts): letters, digits, inner hyphens. */
export const NODE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** Deploy tags are words like `zone=a`, `gpu`, `arch=amd64`, `team/x`: no comma (the separator of
 *  --tags), no blank, nothing sh or systemd expand or split on ($ % \ ' " ` ; & | < > ( ) * ? [ ]
 *  { } ~ # !), and no leading character a flag parser could take for an option. */
export const TAG = /^[A-Za-z0-9][A-Za-z0-9._:=@+/-]{0,127}$/;
/** As many tags as the mesh carries per node (mesh/membership/wire.ts MAX_TAGS). */
export const MAX_TAGS = 32;
/** The serving peer's install listener: an IPv4 address, since that is what peers advertise. */
const SOURCE_URL = /^https:\/\/(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/;
/** curl's --pinnedpubkey form: SHA-256 of the listener's SubjectPublicKeyInfo, base64. */
const PIN = /^sha256\/\/[A-Za-z0-9+/]{43}=$/;
/** 32 random bytes, base64url (install-token.ts). */
const INSTALL_TOKEN = /^[A-Za-z0-9_-]{43}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** A join token (mesh/admission/join-token.ts): `weft1.` and base64url, at most 4096 characters. */
const JOIN_TOKEN = /^weft1\.[A-Za-z0-9_-]{1,4090}$/;
/** The bundle's size as the script states it; anything above the builder's own bound is a bug. */
const MAX_BUNDLE_BYTES = 2 ** 31;
/** Long enough for a peer that starts from TypeScript sources on a loaded host (a few seconds)
 *  and then needs a handshake or two; a peer that has not joined by then has a problem to show. */
export const JOIN_WAIT_S = 90;
/** Characters kept from the origin text in the script's header comment. */
const ORIGIN = /[^A-Za-z0-9 .:()/_,=@+-]/g;

export interface InstallSource {
  /** `https://IPv4:PORT`: the serving peer's install listener. */
  url: string;
  /** curl's --pinnedpubkey value for that listener's key (tls-identity.ts). */
  pin: string;
  /** In the one-liner, the command token (fetches the script, once); in the script, the
   *  session token (fetches the bundle, and the join token once when none is embedded). See
   *  install-token.ts. */
  installToken: string;
}

export interface InstallScriptInput {
  source: InstallSource;
  bundle: { sha256: string; bytes: number };
  /** The peer's name; absent: the new host's hostname (weft launch's own default). */
  name?: string;
  tags: readonly string[];
  /** false: the node runs `--no-dataplane` (mesh only) and needs no Debian package. */
  dataplane: boolean;
  /** Embedded join token, for user data (which is itself secret); absent: fetched once. */
  joinToken?: string;
  /** Who made the script, for its header comment (reduced to harmless characters). */
  origin?: string;
}

/** Why a name cannot be a node's name, or undefined. */
export function nodeNameProblem(name: string): string | undefined {
  return NODE_NAME.test(name) ? undefined : `the node name ${JSON.stringify(name)} is not a DNS label (letters, digits and inner hyphens, at most 63)`;
}

/** Why a tag cannot be a deploy tag of an installed node, or undefined. */
export function tagProblem(tag: string): string | undefined {
  return TAG.test(tag)
    ? undefined
    : `the tag ${JSON.stringify(tag)} is not allowed: tags are 1-128 letters, digits and . _ : = @ + / - (starting with a letter or digit)`;
}

/** Why this input cannot make a script, or undefined. */
export function installInputProblem(i: InstallScriptInput): string | undefined {
  const url = SOURCE_URL.exec(i.source.url);
  if (!url || url.slice(1, 5).some((o) => Number(o) > 255) || Number(url[5]) < 1 || Number(url[5]) > 65535) {
    return `the install source ${JSON.stringify(i.source.url)} is not https://IPv4:PORT`;
  }
  if (!PIN.test(i.source.pin)) return 'the install source pin is not sha256//<base64 of 32 bytes>';
  if (!INSTALL_TOKEN.test(i.source.installToken)) return 'the install token is not 43 base64url characters';
  if (!SHA256_HEX.test(i.bundle.sha256)) return 'the bundle hash is not 64 lowercase hex digits';
  if (!Number.isSafeInteger(i.bundle.bytes) || i.bundle.bytes < 1 || i.bundle.bytes > MAX_BUNDLE_BYTES) return 'the bundle size is not a plausible byte count';
  if (i.name !== undefined) {
    const p = nodeNameProblem(i.name);
    if (p) return p;
  }
  if (i.tags.length > MAX_TAGS) return `at most ${MAX_TAGS} tags (the mesh carries no more per node)`;
  for (const t of i.tags) {
    const p = tagProblem(t);
    if (p) return p;
  }
  if (i.joinToken !== undefined && !JOIN_TOKEN.test(i.joinToken)) return 'the join token is not a weft1. token';
  return undefined;
}

/** A word for sh, single-quoted: the shell takes everything between the quotes literally, and a
 *  quote inside is closed, escaped and reopened. Safe for any string without a NUL byte. */
export function shQuote(s: string): string {
  if (s.includes('\0')) throw new Error('a shell word cannot hold a NUL byte');
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** A word of a systemd ExecStart= line: only words that need no quoting there are accepted
 *  (systemd expands % specifiers and $ variables, and splits on blanks and quotes). */
export function systemdWord(s: string): string {
  if (!/^[A-Za-z0-9._:=@+/,-]+$/.test(s)) throw new Error(`${JSON.stringify(s)} cannot be a word of a systemd unit`);
  return s;
}

/** `weft launch`'s arguments after `--token-file FILE`, as words. */
export function launchArgs(i: Pick<InstallScriptInput, 'name' | 'tags' | 'dataplane'>): string[] {
  return [
    ...(i.name !== undefined ? ['--name', i.name] : []),
    ...(i.tags.length > 0 ? ['--tags', i.tags.join(',')] : []),
    ...(i.dataplane ? [] : ['--no-dataplane']),
  ];
}

/** The Debian packages the data plane drives (scripts/setup.sh's runtime part): ip, the
 *  WireGuard tools and userspace implementation, and dockerd. */
export const DATAPLANE_PACKAGES = ['iproute2', 'wireguard-tools', 'wireguard-go', 'docker.io'] as const;

/** The command to paste on the new host: the script over TLS pinned to the serving peer's key
 *  (-k: the key is self-signed; the pin is the check, and curl applies it with -k), run by sh.
 *  No -f: a refusal comes back as a script that prints its reason and exits 1. */
export function oneLiner(s: InstallSource): string {
  return `curl -sSk --pinnedpubkey ${shQuote(s.pin)} ${shQuote(`${s.url}/install/${s.installToken}`)} | sh`;
}

/** The sh text that a refused request for the script gets: one line on stderr, exit 1. */
export function refusalScript(reason: string): string {
  return `#!/bin/sh\nprintf '%s\\n' ${shQuote(`weft install: ${reason}`)} >&2\nexit 1\n`;
}

/** The install script. Throws (with the reason) when the input is refused. */
export function installScript(i: InstallScriptInput): string {
  const problem = installInputProblem(i);
  if (problem) throw new Error(problem);
  const args = launchArgs(i);
  const version = i.bundle.sha256.slice(0, 12);
  const origin = (i.origin ?? 'a weft peer').replace(ORIGIN, '').slice(0, 200);
  const who = i.name ?? "this host's hostname";
  const packages = i.dataplane ? DATAPLANE_PACKAGES.join(' ') : '';
  const joinStep = i.joinToken === undefined
    ? 'weft_fetch_join_token'
    : `weft_write_join_token <<'WEFT_JOIN_TOKEN'\n${i.joinToken}\nWEFT_JOIN_TOKEN`;
  return `#!/bin/sh
# weft install script, made by ${origin} for the node ${who}.
# In order, stopping at the first problem with one line saying what to do:
#  1. checks that it runs as root with the tools it needs;
#  2. installs the Debian packages weft's data plane needs, with apt-get and only those missing
#     (that needs this host's own package mirror; nothing else is fetched from outside the mesh);
#  3. downloads weft's release bundle (Node 24, weft, its node_modules) from the peer over TLS
#     pinned to the peer's key, and refuses it unless its SHA-256 is bundle_sha256 below;
#  4. unpacks it into /opt/weft/${version} and links /usr/local/bin/weft to it;
#  5. puts the join token in /etc/weft/join-token (root only), never on a command line;
#  6. writes weft.service and starts it with systemd, or starts the peer directly where systemd
#     does not run (or WEFT_NO_SYSTEMD=1), then waits until the peer has joined the mesh.
# WEFT_PREFIX=/dir installs under /dir instead of / (the peer is then started directly);
# TMPDIR is where the bundle is downloaded to (default /var/tmp).
set -euf

weft_say() { printf 'weft install: %s\\n' "$*" >&2; }
weft_die() { weft_say "$*"; exit 1; }
weft_tmp=
weft_cleanup() { [ -z "$weft_tmp" ] || rm -rf "$weft_tmp"; }
trap weft_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# A refusal's body is one line from the peer: printed without control characters, or the HTTP
# status when there is none.
weft_reason() {
  weft_text=$(head -c 400 "$1" 2>/dev/null | LC_ALL=C tr -cd '[:print:]') || weft_text=
  printf '%s\\n' "\${weft_text:-the peer refused the request (HTTP $2)}"
}

# The session token reaches curl on its standard input, as a config line, never in its arguments.
# Prints the HTTP status; the body goes to $1.
weft_curl() {
  weft_out=$1 weft_path=$2
  shift 2
  printf 'header = "Authorization: Bearer %s"\\n' "$session_token" |
    curl -sS -K - -k --pinnedpubkey "$pin" --proto =https -o "$weft_out" -w '%{http_code}' "$@" "$url$weft_path"
}

weft_check_host() {
  [ "$(id -u)" = 0 ] || weft_die 'run this as root (put sudo before sh: ... | sudo sh)'
  case $prefix in
    '') ;;
    /*[!A-Za-z0-9._/-]*) weft_die 'WEFT_PREFIX may hold only letters, digits and . _ - /' ;;
    /*) ;;
    *) weft_die 'WEFT_PREFIX must be an absolute path' ;;
  esac
  for weft_t in curl tar gzip sha256sum head tr grep mktemp readlink setsid sleep date uname; do
    command -v "$weft_t" >/dev/null 2>&1 || weft_die "this host has no $weft_t: install it (Debian: apt-get install curl tar gzip coreutils util-linux) and run this again"
  done
  [ ! -e "$token_file" ] || weft_die "weft is installed here already ($token_file exists): to install it again, stop it and remove that file first"
}

weft_packages() {
  [ -n "$packages" ] || return 0
  if ! command -v dpkg-query >/dev/null 2>&1; then
    weft_say "not a Debian host (no dpkg-query): make sure $packages or their equivalents are installed"
    return 0
  fi
  weft_missing=
  for weft_p in $packages; do
    dpkg-query -W -f='\${Status}' "$weft_p" 2>/dev/null | grep -q 'install ok installed' || weft_missing="$weft_missing $weft_p"
  done
  [ -n "$weft_missing" ] || return 0
  weft_say "installing Debian packages:$weft_missing (apt-get, from this host's package mirror)"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $weft_missing </dev/null >/dev/null; }; then
    weft_die "cannot install$weft_missing with apt-get (is this host's package mirror reachable?): install them and run this again"
  fi
}

weft_fetch_bundle() {
  weft_tmp=$(mktemp -d "\${TMPDIR:-/var/tmp}/weft-install.XXXXXX") || weft_die 'cannot make a temporary directory (set TMPDIR to a writable one)'
  weft_say "downloading weft $version ($bundle_bytes bytes) from $url"
  weft_code=$(weft_curl "$weft_tmp/bundle.tar.gz" /bundle) || weft_die "cannot download weft from $url (see curl's message above)"
  [ "$weft_code" = 200 ] || weft_die "$(weft_reason "$weft_tmp/bundle.tar.gz" "$weft_code")"
  weft_got=$(sha256sum "$weft_tmp/bundle.tar.gz") || weft_die 'cannot hash the downloaded bundle'
  weft_got=\${weft_got%% *}
  [ "$weft_got" = "$bundle_sha256" ] || weft_die "the bundle from $url has SHA-256 $weft_got, not $bundle_sha256 as this script says: refused, nothing was installed (make a new install command with weft node install-script; if this happens again, the bundle is being changed on the peer or on the way)"
}

weft_unpack() {
  mkdir -p "$opt" "$prefix/usr/local/bin"
  weft_new=$opt/.$version.new
  rm -rf "$weft_new"
  mkdir "$weft_new"
  tar -xzf "$weft_tmp/bundle.tar.gz" -C "$weft_new" --no-same-owner || weft_die "cannot unpack the bundle into $opt (is the disk full?)"
  [ -x "$weft_new/bin/weft" ] || weft_die 'the bundle has no bin/weft (made by an incompatible weft?)'
  rm -rf "$opt/$version"
  mv "$weft_new" "$opt/$version"
  ln -sfn "$version" "$opt/current"
  ln -sfn "$opt/current/bin/weft" "$prefix/usr/local/bin/weft"
  weft_cleanup
  weft_tmp=
}

weft_fetch_join_token() {
  mkdir -p "$etc"
  chmod 700 "$etc"
  rm -f "$token_file.new"
  weft_code=$(umask 077 && weft_curl "$token_file.new" /join -X POST -d '') || { rm -f "$token_file.new"; weft_die "cannot fetch the join token from $url (see curl's message above)"; }
  if [ "$weft_code" != 200 ]; then
    weft_r=$(weft_reason "$token_file.new" "$weft_code")
    rm -f "$token_file.new"
    weft_die "$weft_r"
  fi
  chmod 600 "$token_file.new"
  mv "$token_file.new" "$token_file"
}

# The token arrives on standard input (a here-document), so no command line carries it.
weft_write_join_token() {
  mkdir -p "$etc"
  chmod 700 "$etc"
  (umask 077 && cat >"$token_file.new") || weft_die "cannot write $token_file"
  chmod 600 "$token_file.new"
  mv "$token_file.new" "$token_file"
}

weft_unit() {
  mkdir -p "$prefix/etc/systemd/system" "$data"
  chmod 700 "$data"
  printf '%s\\n' \\
    '# Written by the weft install script. The join token is in the file named by --token-file,' \\
    '# readable by root only; this unit holds no secret.' \\
    '[Unit]' \\
    'Description=weft peer: overlay mesh and service discovery for Docker hosts' \\
    'Wants=network-online.target' \\
    'After=network-online.target${i.dataplane ? ' docker.service' : ''}' \\
    '' \\
    '[Service]' \\
    "ExecStart=$weft_bin --data-dir $data launch --token-file $token_file\${*:+ $*}" \\
    '# Restart it whatever ended it, but not in a tight loop (a bad token would spin).' \\
    'Restart=always' \\
    'RestartSec=5' \\
    '# It leaves the mesh cleanly on SIGTERM; a leader hands over first.' \\
    'TimeoutStopSec=30' \\
    '' \\
    '[Install]' \\
    'WantedBy=multi-user.target' >"$unit"
}

weft_start() {
  if [ -z "$prefix" ] && [ -z "\${WEFT_NO_SYSTEMD:-}" ] && [ -d /run/systemd/system ]; then
    { systemctl daemon-reload && systemctl enable --now weft.service; } </dev/null >/dev/null ||
      weft_die 'systemd would not start weft.service: see systemctl status weft and journalctl -u weft'
    weft_how='systemd runs it as weft.service (systemctl status weft; journalctl -u weft)'
    weft_alive() { systemctl is-active --quiet weft.service; }
  else
    mkdir -p "$prefix/var/log" "$prefix/run"
    weft_log=$prefix/var/log/weft.log
    (umask 077 && : >>"$weft_log")
    setsid "$weft_bin" --data-dir "$data" launch --token-file "$token_file" "$@" </dev/null >>"$weft_log" 2>&1 &
    weft_pid=$!
    printf '%s\\n' "$weft_pid" >"$prefix/run/weft.pid"
    weft_how="started directly as pid $weft_pid, logging to $weft_log; nothing restarts it if it stops or the host reboots (without WEFT_PREFIX and WEFT_NO_SYSTEMD, systemd would, through $unit)"
    weft_alive() { kill -0 "$weft_pid" 2>/dev/null; }
  fi
}

weft_wait_joined() {
  weft_until=$(($(date +%s) + ${JOIN_WAIT_S}))
  while :; do
    weft_alive || weft_die "the weft peer stopped: $weft_how"
    weft_status=$("$weft_bin" --data-dir "$data" status --json 2>/dev/null </dev/null) || weft_status=
    case $weft_status in *'"alive": '[1-9]*) break ;; esac
    [ "$(date +%s)" -lt "$weft_until" ] || weft_die "weft is installed and running but has not joined the mesh after ${JOIN_WAIT_S} s: $weft_how"
    sleep 1
  done
}

weft_main() {
  url=${shQuote(i.source.url)}
  pin=${shQuote(i.source.pin)}
  session_token=${shQuote(i.source.installToken)}
  bundle_sha256=${shQuote(i.bundle.sha256)}
  bundle_bytes=${i.bundle.bytes}
  version=${shQuote(version)}
  packages=${shQuote(packages)}
  prefix=\${WEFT_PREFIX:-}
  prefix=\${prefix%/}
  opt=$prefix/opt/weft
  etc=$prefix/etc/weft
  data=$prefix/var/lib/weft
  token_file=$etc/join-token
  unit=$prefix/etc/systemd/system/weft.service
  weft_bin=$opt/current/bin/weft
  umask 022
  # weft launch's arguments after --token-file: words that need no quoting in a systemd unit
  # either (checked when this script was made), single-quoted here all the same.
  set -- ${args.map((a) => shQuote(systemdWord(a))).join(' ')}

  weft_check_host
  weft_packages
  weft_fetch_bundle
  weft_unpack
  ${joinStep}
  weft_unit "$@"
  weft_start "$@"
  weft_wait_joined
  echo "weft is installed: $opt/$version (run it as $prefix/usr/local/bin/weft)"
  echo "joined the mesh as ${i.name ?? '$(uname -n)'}; $weft_how"
}

# Everything above only defines; this line runs it, once sh has read the whole script (a
# download cut short runs nothing).
weft_main
`;
}
