# Shared by scripts/run, scripts/stop and scripts/test: settings, toolchain checks and the
# local PostgreSQL 15 clusters. Sourced, not executed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGRX_VERSION=0.18.1
PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PG_BIN/pg_config
AWF_PORT=${AWF_PORT:-54815}          # the run command's cluster
AWF_TEST_PORT=${AWF_TEST_PORT:-54816} # the test command's throwaway cluster
AWF_TEST_PRELOAD_PORT=${AWF_TEST_PRELOAD_PORT:-54817} # the same, with the library preloaded
AWF_HTTP_PORT=${AWF_HTTP_PORT:-8787}
AWF_DB=${AWF_DB:-awf}

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs a command with root rights (directly as root, else through sudo).
as_root() { if is_root; then "$@"; else sudo "$@"; fi; }

# The OS user PostgreSQL runs as: it refuses to run as root, so root uses `postgres`.
pg_user() { if is_root; then echo postgres; else id -un; fi; }

# Runs a command as the PostgreSQL OS user.
as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Where cluster data lives: the project's ignored .awf folder, unless the postgres user
# cannot traverse the checkout (a home directory with mode 700, say).
state_dir() {
  local d=$ROOT/.awf
  mkdir -p "$d"
  if is_root && ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
    d=/var/tmp/awf-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)
    mkdir -p "$d"
    log "the postgres user cannot reach $ROOT; cluster data goes to $d" 
  fi
  echo "$d"
}

# Debian packages the build and the clusters need; installs only what is missing.
ensure_packages() {
  local want=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR libclang-dev clang pkg-config curl)
  is_root && want+=(sudo) # cargo pgrx test --runas needs sudo
  local missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # Debian's package starts a cluster of its own on 5432; ours use their own ports, so leave it.
}

# cargo-pgrx at exactly the pinned version, and pgrx pointed at the system PostgreSQL 15.
ensure_pgrx() {
  if [ "$(cargo pgrx --version 2>/dev/null || true)" != "cargo-pgrx $PGRX_VERSION" ]; then
    log "installing cargo-pgrx $PGRX_VERSION (about 6 minutes on 2 cores)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
  fi
  local cfg=${PGRX_HOME:-$HOME/.pgrx}/config.toml
  if ! grep -q "^pg$PG_MAJOR = \"$PG_CONFIG\"" "$cfg" 2>/dev/null; then
    log "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
    cargo pgrx init --pg$PG_MAJOR "$PG_CONFIG" >/dev/null
  fi
}

# A fingerprint of everything that goes into the extension's build.
source_stamp() {
  (cd "$ROOT" && find Cargo.toml Cargo.lock awf_lifecycle.control src sql crates/awf_core/src \
     crates/awf_core/Cargo.toml -type f -print0 2>/dev/null | sort -z | xargs -0 sha256sum) |
    sha256sum | cut -c1-64
}

# Moves the installed library aside, for `cargo pgrx test`, which copies its own build over
# the file in place: a running backend that has the old one mapped would crash. After the
# rename the path is free (new backends cannot load the library until the test build lands)
# and running backends keep the old inode until they exit.
retire_installed_library() {
  local lib
  lib=$("$PG_CONFIG" --pkglibdir)/awf_lifecycle.so
  if [ -f "$lib" ]; then
    as_root mv -f "$lib" "$lib.retired"
    as_root rm -f "$lib.retired"
  fi
}

# Builds and installs the extension into the system PostgreSQL; skipped when the sources did
# not change and the installed library is still the one this script installed (`cargo pgrx
# test` installs a test build of its own over it). $1: cargo profile flag, e.g. "--release".
install_extension() {
  local profile=${1:-} stamp_file=$ROOT/.awf/installed.stamp
  local lib sharedir
  lib=$("$PG_CONFIG" --pkglibdir)/awf_lifecycle.so
  sharedir=$("$PG_CONFIG" --sharedir)
  local want="$(source_stamp)${profile}"
  if [ -f "$stamp_file" ] && [ -f "$lib" ] && [ -f "$sharedir/extension/awf_lifecycle.control" ] &&
     [ "$(cat "$stamp_file")" = "$want $(sha256sum <"$lib" | cut -c1-64)" ]; then
    log "extension up to date"
    return
  fi
  log "building and installing the extension ${profile:-(debug)}"
  mkdir -p "$ROOT/.awf"
  # Build a package, then install(1) its files: install replaces each file with a new inode,
  # so running backends keep the library they mapped (an in-place copy would crash them).
  local out=$ROOT/target/awf-package
  rm -rf "$out"
  local debug=()
  [ -z "$profile" ] && debug=(--debug)
  (cd "$ROOT" && cargo pgrx package "${debug[@]}" --pg-config "$PG_CONFIG" --out-dir "$out") >&2
  local pkglib sharedir_ext
  pkglib=$("$PG_CONFIG" --pkglibdir)
  sharedir_ext=$("$PG_CONFIG" --sharedir)/extension
  as_root install -m 0755 "$out$pkglib/awf_lifecycle.so" "$pkglib/awf_lifecycle.so"
  for f in "$out$sharedir_ext"/awf_lifecycle*; do
    as_root install -m 0644 "$f" "$sharedir_ext/$(basename "$f")"
  done
  # The install scripts of released versions, so an old version can still be created and
  # updated (the upgrade test does exactly that).
  for f in "$ROOT"/sql/released/awf_lifecycle--*.sql; do
    as_root install -m 0644 "$f" "$sharedir_ext/$(basename "$f")"
  done
  echo "$want $(sha256sum <"$lib" | cut -c1-64)" >"$stamp_file"
}

# Creates (when needed) and starts a cluster. $1: data dir, $2: port, $3: extra
# postgresql.conf lines for a new cluster. Idempotent.
start_cluster() {
  local data=$1 port=$2 extra=${3:-}
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initdb $data (port $port)"
    mkdir -p "$data"
    is_root && chown postgres: "$data"
    chmod 700 "$data"
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$data/postgresql.conf" <<CONF
# awf_lifecycle local cluster
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$data'
logging_collector = off
fsync = on
$extra
CONF
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "starting PostgreSQL on 127.0.0.1:$port"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null ||
      { tail -20 "$data/server.log" >&2; die "PostgreSQL did not start"; }
  fi
}

stop_cluster() {
  local data=$1
  if [ -f "$data/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "stopping PostgreSQL ($data)"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  fi
}

# psql against a local cluster as the postgres superuser.
psql_at() {
  local port=$1; shift
  PGOPTIONS="-c client_min_messages=warning" \
    "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -q -h 127.0.0.1 -p "$port" -U postgres "$@"
}
