#!/bin/sh
# check.sh - validate deploy/ with local tools, without a container engine (the images
# and compose files run for real under podman in tests/containers/containers_test.sh):
#
#   1. shellcheck (warnings and errors) on every deploy script and the container test
#   2. yamllint on the compose files
#   3. docker-compose config on both compose files (the Debian docker-compose 1.29 package),
#      plus the rules they must keep: restart policies, state volumes, one Dockerfile target
#      per service, the project's PostgreSQL image, nothing podman cannot run
#   4. deploy/docker/Dockerfile's stages replayed as a script: its COPY lines into scratch
#      "image" directories, its RUN lines (deploy/docker/build-steps.sh) with every absolute
#      path moved under them, apt-get only simulated (CS_DRY_RUN=1); each service's
#      "image" must hold its ENTRYPOINT and HEALTHCHECK binaries, and they must start
#   5. systemd-analyze verify on the units, in a scratch root holding the built binaries
#   6. deploy/env/crmsync.env.example lists every variable every binary's --help lists
#   7. server B's files for real: a PostgreSQL 15 with TLS, the image's pg_hba.conf and init
#      script, then the built store migrates as crmsync_store over sslmode=verify-full, the
#      analyst role reads but cannot write, plain TCP and a wrong CA are refused, and
#      crmsyncctl status reads the database as the analyst
#
#   deploy/check.sh            everything (about 30 s; step 7 needs root or the postgres user)
# Exit 0 = all passed, 1 = a check failed, 77 = a needed tool is missing (run
# deploy/install-deps.sh); ctest treats 77 as "skipped".
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/crmsync-deploy-check.XXXXXX")
chmod 0755 "$TMP"
PGBIN=${CS_PG_BINDIR:-/usr/lib/postgresql/15/bin}
SERVICES="store amo-sync hollihop-sync hook-gateway"
STORE_PID=""

cleanup() {
	[ -n "$STORE_PID" ] && kill "$STORE_PID" 2>/dev/null && wait "$STORE_PID" 2>/dev/null
	if [ -f "$TMP/pg/data/postmaster.pid" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$TMP/pg/data" -m immediate stop >/dev/null 2>&1 || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

T0=$(date +%s)
step() { printf '\n== %s  (%ss)\n' "$*" $(($(date +%s) - T0)); }
ok() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*" >&2; exit 1; }
need() {
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || { echo "check: $t is missing (deploy/install-deps.sh installs it)" >&2; exit 77; }
	done
}
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

need shellcheck yamllint docker-compose systemd-analyze cmake openssl python3

# ---------------------------------------------------------------------------------------
step "1. shellcheck"
SCRIPTS=$(find deploy tests/containers -name '*.sh' | sort; ls deploy/backup/crmsync-*)
# shellcheck disable=SC2086
shellcheck -x -S warning $SCRIPTS || fail "shellcheck"
ok "$(echo "$SCRIPTS" | wc -l) scripts"

# ---------------------------------------------------------------------------------------
step "2. yamllint"
cat >"$TMP/yamllint.yml" <<'EOF'
extends: default
rules:
  line-length: {max: 120}
  document-start: disable
  comments: {min-spaces-from-content: 1}
EOF
yamllint -s -c "$TMP/yamllint.yml" deploy/compose/*.yml || fail "yamllint"
ok "deploy/compose/*.yml"

# ---------------------------------------------------------------------------------------
step "3. docker-compose config"
# The compose files sit in deploy/compose and build with context ../..: lay out the same
# tree, with the example env files standing in for the real ones.
mkdir -p "$TMP/tree/deploy/compose"
cp deploy/compose/*.yml "$TMP/tree/deploy/compose/"
cp deploy/env/crmsync.env.example "$TMP/tree/deploy/compose/crmsync.env"
cp deploy/env/server-b.env.example "$TMP/tree/deploy/compose/server-b.env"
for f in server-a server-b; do
	(cd "$TMP/tree/deploy/compose" && docker-compose -f "$f.yml" config) >"$TMP/$f.config.yml" ||
	    fail "docker-compose -f $f.yml config"
	ok "docker-compose -f deploy/compose/$f.yml config"
done
python3 - "$TMP/server-a.config.yml" "$TMP/server-b.config.yml" "$SERVICES" <<'EOF' || fail "compose rules"
import sys, yaml
a = yaml.safe_load(open(sys.argv[1]))
b = yaml.safe_load(open(sys.argv[2]))
want = sys.argv[3].split()
svc = a["services"]
errors = []
for s in want:
    c = svc.get(s)
    if c is None:
        errors.append(f"server-a: no service {s}"); continue
    if c.get("restart") not in ("always", "unless-stopped", "on-failure"):
        errors.append(f"server-a: {s}: restart policy is {c.get('restart')!r}")
    if c["build"]["dockerfile"] != "deploy/docker/Dockerfile" or c["build"].get("target") != s:
        errors.append(f"server-a: {s}: builds {c['build']}, not target {s} of deploy/docker/Dockerfile")
    # Under podman a ulimits entry replaces containers.conf's default_ulimits (see there).
    if "ulimits" in c:
        errors.append(f"server-a: {s}: ulimits (breaks podman without CAP_SYS_RESOURCE)")
    if "profiles" in c:
        errors.append(f"server-a: {s}: profiles (podman-compose 1.0.3 ignores them)")
    env = c.get("environment", {})
    # Every service listens on all interfaces inside its container and dials the others by name.
    for k, v in env.items():
        if k.endswith(("_URL", "_HEALTH_URL")) and "127.0.0.1" in str(v):
            errors.append(f"server-a: {s}: {k}={v} is loopback inside a container")
    if not c.get("read_only"):
        errors.append(f"server-a: {s}: root filesystem not read-only")
vols = {v.split(":")[0]: v.split(":")[1] for v in svc["hook-gateway"].get("volumes", []) if isinstance(v, str)}
if vols.get("gateway-state") != "/var/lib/crmsync/hook-gateway":
    errors.append("server-a: hook-gateway: journal volume missing")
if svc["hook-gateway"]["environment"].get("CS_GATEWAY_JOURNAL_DIR", "").find("/var/lib/crmsync/hook-gateway/") != 0:
    errors.append("server-a: hook-gateway: journal outside its volume")
vols = {v.split(":")[0]: v.split(":")[1] for v in svc["amo-sync"].get("volumes", []) if isinstance(v, str)}
tok = svc["amo-sync"]["environment"].get("CS_AMO_TOKEN_FILE", "")
if vols.get("amo-state") is None or not tok.startswith(vols["amo-state"] + "/"):
    errors.append("server-a: amo-sync: token file not on the amo-state volume")
for v in ("gateway-state", "amo-state"):
    if v not in a.get("volumes", {}):
        errors.append(f"server-a: volume {v} not declared")
pg = b["services"]["postgres"]
if not pg["image"].startswith("crmsync/postgres:") or pg["build"]["dockerfile"] != "deploy/docker/postgres.Dockerfile":
    errors.append(f"server-b: image {pg['image']} is not the project's (deploy/docker/postgres.Dockerfile)")
if pg.get("restart") not in ("always", "unless-stopped", "on-failure"):
    errors.append("server-b: no restart policy")
mounts = {v.split(":")[1] for v in pg.get("volumes", []) if isinstance(v, str)}
for m in ("/var/lib/postgresql/data", "/etc/postgresql/tls/server.crt", "/etc/postgresql/tls/server.key"):
    if m not in mounts:
        errors.append(f"server-b: nothing mounted at {m}")
for e in errors:
    print("  " + e)
sys.exit(1 if errors else 0)
EOF
# TLS and the hba file are the image's business now: its entrypoint starts postgres so.
for flag in ssl=on ssl_cert_file= ssl_key_file= hba_file=/etc/postgresql/pg_hba.conf password_encryption=scram-sha-256; do
	grep -q -- "-c $flag" deploy/docker/postgres/entrypoint.sh || fail "postgres entrypoint lacks -c $flag"
done
ok "restart policies, state volumes, listen/dial addresses, targets, TLS flags"

# ---------------------------------------------------------------------------------------
step "4. deploy/docker/Dockerfile replayed as a script"
DF=deploy/docker/Dockerfile
# Replay one stage (by name) of the Dockerfile into directory $2: COPY (from the
# repository, or from the build stage's directory $3 for --from=build) and RUN, every
# absolute path under $2.
replay() {	# replay STAGE IMGDIR BUILDIMG
	want=$1 img=$2 from=$3
	python3 - "$DF" "$want" >"$TMP/stage.sh" <<'EOF'
import shlex, sys
lines, cur = [], ""
for raw in open(sys.argv[1]):
    line = raw.rstrip("\n")
    if line.lstrip().startswith("#") and not cur:
        continue
    if line.endswith("\\"):
        cur += line[:-1] + " "; continue
    cur += line
    if cur.strip():
        lines.append(cur.strip())
    cur = ""
stage, out = None, []
for l in lines:
    word, _, rest = l.partition(" ")
    word = word.upper()
    if word == "FROM":
        stage = rest.split()[-1]; continue
    if stage != sys.argv[2]:
        continue
    if word == "COPY":
        args = shlex.split(rest)
        src_from = None
        while args and args[0].startswith("--"):
            if args[0].startswith("--from="):
                src_from = args[0][7:]
            args.pop(0)
        *srcs, dest = args
        for s in srcs:
            base = '"$FROM"' if src_from else '"$REPO"'
            out.append(f'copy_in {base}/{shlex.quote(s.lstrip("/"))} {shlex.quote(dest)}')
    elif word == "RUN":
        # Every absolute path of the command moves under the image directory.
        out.append("run_in " + shlex.quote(rest))
print("\n".join(out))
EOF
	# shellcheck disable=SC2034 # used by the generated stage script
	REPO=$ROOT FROM=$from IMG=$img sh -euc '
		copy_in() {	# Docker COPY: a directory copies its contents, "dir/" dests take names
			src=$1 dest=$IMG$2
			if [ -d "$src" ]; then mkdir -p "$dest" && cp -a "$src/." "$dest/"
			else case $2 in */) mkdir -p "$dest" && cp -a "$src" "$dest" ;;
				*) mkdir -p "$(dirname "$dest")" && cp -a "$src" "$dest" ;; esac
			fi
		}
		run_in() {
			cmd=$(printf "%s" "$1" | sed "s# /# $IMG/#g")
			CS_DRY_RUN=1 sh -euc "$cmd"
		}
		. "$1"' replay "$TMP/stage.sh"
}
stage_of() {	# stage_of NAME: the Dockerfile lines of stage NAME
	awk -v n="$1" '/^FROM / { on = ($NF == n) } on' "$DF"
}
grep -q '^FROM debian:12 AS build$' "$DF" || fail "$DF: build stage is not debian:12"
grep -q '^FROM debian:12-slim AS runtime$' "$DF" || fail "$DF: runtime stage is not debian:12-slim"
if grep '^RUN ' "$DF" | grep -v 'build-steps.sh' >/dev/null; then fail "$DF: a RUN outside build-steps.sh"; fi
# The project compiles once: one build step, in the build stage.
[ "$(grep -c 'build-steps.sh build ' "$DF")" = 1 ] || fail "$DF: not exactly one compile step"
replay build "$TMP/build-img" "" >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; fail "$DF: build stage"; }
replay runtime "$TMP/img-runtime" "$TMP/build-img" >"$TMP/runtime.log" 2>&1 ||
    { cat "$TMP/runtime.log"; fail "$DF: runtime stage"; }
for p in libnng1 libprotobuf-c1 libpq5 libcurl4 libmbedtls14; do
	grep -q "apt-get install.*\b$p\b" "$TMP/runtime.log" || fail "$DF: runtime does not install $p"
done
[ ! -e "$TMP/img-runtime/tmp/crmsync-setup" ] || fail "$DF: setup files left in the runtime image"
ok "build and runtime stages: one compile; runtime installs $(sed -n 's/.*(dry run) apt-get install //p' "$TMP/runtime.log" | wc -w) packages"
for svc in $SERVICES; do
	st=$(stage_of "$svc")
	[ "$(printf '%s\n' "$st" | head -n1)" = "FROM runtime AS $svc" ] || fail "$DF: no stage 'FROM runtime AS $svc'"
	printf '%s\n' "$st" | grep -q '^USER crmsync' || fail "$DF: $svc: no non-root USER"
	printf '%s\n' "$st" | grep -q "^    CMD \[\"crmsyncctl\", \"probe\", \"-q\", \"$svc\"\]" || fail "$DF: $svc: HEALTHCHECK is not crmsyncctl probe $svc"
	printf '%s\n' "$st" | grep -q "^ENTRYPOINT \[\"/usr/local/bin/crmsync-$svc\"\]" || fail "$DF: $svc: ENTRYPOINT"
	img=$TMP/img-$svc
	mkdir -p "$img"
	cp -a "$TMP/img-runtime/." "$img/"
	replay "$svc" "$img" "$TMP/build-img" >"$TMP/stage-$svc.log" 2>&1 || { cat "$TMP/stage-$svc.log"; fail "$DF: stage $svc"; }
	[ -x "$img/usr/local/bin/crmsync-$svc" ] || fail "$DF: $svc image lacks crmsync-$svc"
	[ -x "$img/usr/local/bin/crmsyncctl" ] || fail "$DF: $svc image lacks crmsyncctl"
	[ "$(find "$img/usr/local/bin" -type f | wc -l)" = 2 ] || fail "$DF: $svc image holds other binaries"
	"$img/usr/local/bin/crmsync-$svc" --help >/dev/null || fail "crmsync-$svc --help"
	"$img/usr/local/bin/crmsyncctl" --version >/dev/null || fail "crmsyncctl --version"
	ok "$DF target $svc: crmsync-$svc + crmsyncctl, USER crmsync, HEALTHCHECK, ENTRYPOINT"
done

# ---------------------------------------------------------------------------------------
step "5. systemd-analyze verify"
R=$TMP/sysroot
mkdir -p "$R/usr/local/bin" "$R/etc/crmsync/tls" "$R/etc/systemd/system" "$R/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$R/usr/lib/systemd/"
for svc in $SERVICES; do cp "$TMP/img-$svc/usr/local/bin/crmsync-$svc" "$R/usr/local/bin/"; done
cp deploy/backup/crmsync-backup "$R/usr/local/bin/"
# the gateway's ExecReload=/bin/kill -HUP $MAINPID (procps)
mkdir -p "$R/bin" && cp /bin/kill "$R/bin/"
: >"$R/etc/crmsync/crmsync.env"
cp deploy/systemd/*.service deploy/systemd/*.target deploy/systemd/*.timer "$R/etc/systemd/system/"
units=$(cd deploy/systemd && for u in *.service *.target *.timer; do echo "$u"; done)
# shellcheck disable=SC2086
systemd-analyze verify --root="$R" $units >"$TMP/verify.log" 2>&1 || { cat "$TMP/verify.log"; fail "systemd-analyze verify"; }
# It warns (unknown keys, bad values) without failing: any output is a failure here.
[ ! -s "$TMP/verify.log" ] || { cat "$TMP/verify.log"; fail "systemd-analyze verify printed warnings"; }
for u in $units; do
	case $u in *.service) ;; *) continue ;; esac
	for k in Restart=on-failure EnvironmentFile= ProtectSystem=strict NoNewPrivileges=yes PrivateTmp=yes \
	    RestrictAddressFamilies= DynamicUser=yes; do
		grep -q "^$k" "deploy/systemd/$u" || fail "$u: no $k"
	done
	score=$(systemd-analyze security --offline=yes --root="$R" "$u" 2>/dev/null | sed -n 's/.*exposure level for .*: \([0-9.]*\) .*/\1/p')
	ok "$u (exposure $score)"
done

# ---------------------------------------------------------------------------------------
step "6. every variable in deploy/env/crmsync.env.example"
for bin in "$TMP"/img-*/usr/local/bin/crmsync-* "$TMP/img-store/usr/local/bin/crmsyncctl"; do
	missing=""
	for v in $("$bin" --help | sed -n 's/^  \(CS_[A-Z0-9_]*\) .*/\1/p'); do
		grep -Eq "^#?$v=|^# $v: " deploy/env/crmsync.env.example || missing="$missing $v"
	done
	[ -z "$missing" ] || fail "$(basename "$bin") reads$missing, not in deploy/env/crmsync.env.example (regenerate: deploy/env/gen-example.sh BUILD_DIR > deploy/env/crmsync.env.example)"
	ok "$(basename "$bin")"
done

# ---------------------------------------------------------------------------------------
step "7. server B: TLS, roles, the store as crmsync_store"
if [ ! -x "$PGBIN/initdb" ] || ! command -v psql >/dev/null; then
	echo "skip: no PostgreSQL 15 server binaries in $PGBIN"
elif [ "$(id -u)" != 0 ] && [ "$(id -un)" != postgres ]; then
	echo "skip: needs root (to run PostgreSQL as postgres) or the postgres user"
else
	mkdir -p "$TMP/pg"
	sh deploy/compose/make-certs.sh "$TMP/tls" localhost 127.0.0.1 >/dev/null
	sh deploy/compose/make-certs.sh "$TMP/othertls" localhost 127.0.0.1 >/dev/null
	cp "$TMP/tls/server.crt" "$TMP/tls/server.key" "$TMP/pg/"
	[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$TMP/pg"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	as_pg "$PGBIN/initdb" -D "$TMP/pg/data" -U postgres -A peer --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
	as_pg "$PGBIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/log" -w -t 30 -o "-p $port -k $TMP/pg \
	    -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on -c ssl_cert_file=$TMP/pg/server.crt \
	    -c ssl_key_file=$TMP/pg/server.key -c ssl_min_protocol_version=TLSv1.2 \
	    -c hba_file=$ROOT/deploy/docker/postgres/pg_hba.conf -c password_encryption=scram-sha-256" start >/dev/null
	as_pg env PGHOST="$TMP/pg" PGPORT="$port" "$PGBIN/createdb" -U postgres crmsync
	as_pg env PGHOST="$TMP/pg" PGPORT="$port" POSTGRES_DB=crmsync CRMSYNC_STORE_PASSWORD='st0re pw/%' \
	    CRMSYNC_ANALYST_PASSWORD=analyst-pw sh deploy/docker/postgres/initdb/10-crmsync-roles.sh >/dev/null
	ok "init script: roles created"
	# The password has a space, a slash and a percent sign: percent-encoded in the URI.
	dsn="postgresql://crmsync_store:st0re%20pw%2F%25@localhost:$port/crmsync?sslmode=verify-full&sslrootcert=$TMP/tls/ca.crt"
	adsn="postgresql://crmsync_analyst:analyst-pw@localhost:$port/crmsync?sslmode=verify-full&sslrootcert=$TMP/tls/ca.crt"
	store=$TMP/img-store/usr/local/bin/crmsync-store
	CS_PG_DSN=$dsn CS_STORE_URL="ipc://$TMP/store.sock" CS_STORE_HEALTH_URL="ipc://$TMP/store-health.sock" \
	    "$store" >"$TMP/store.log" 2>&1 &
	STORE_PID=$!
	i=0
	until [ "$(psql "$adsn" -XAtc "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'amo'" 2>/dev/null || echo 0)" -gt 0 ]; do
		i=$((i + 1))
		if [ $i -ge 100 ] || ! kill -0 "$STORE_PID" 2>/dev/null; then
			cat "$TMP/store.log"
			fail "the store did not migrate as crmsync_store"
		fi
		sleep 0.2
	done
	sleep 0.5
	kill -0 "$STORE_PID" 2>/dev/null || { cat "$TMP/store.log"; fail "the store died after migrating"; }
	ok "store migrated as crmsync_store over TLS (verify-full)"
	owner=$(psql "$adsn" -XAtc "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname IN ('amo','hollihop','crmsync')")
	[ "$owner" = crmsync_store ] || fail "tables owned by $owner"
	[ "$(psql "$adsn" -XAtc 'SHOW ssl' 2>/dev/null)" = on ] || fail "not TLS"
	psql "$adsn" -XAtc "SELECT count(*) FROM hollihop.students" >/dev/null || fail "analyst cannot read"
	if psql "$adsn" -XAtc "INSERT INTO crmsync.cursors (crm, name, value) VALUES ('x','y','z')" >/dev/null 2>&1; then
		fail "analyst could write"
	fi
	if psql "$adsn" -XAtc "CREATE TABLE public.t (i int)" >/dev/null 2>&1; then fail "analyst could create"; fi
	if psql "postgresql://crmsync_store:x@localhost:$port/crmsync?sslmode=disable" -XAtc 'SELECT 1' >/dev/null 2>&1; then
		fail "plain TCP accepted"
	fi
	if psql "postgresql://crmsync_analyst:analyst-pw@localhost:$port/crmsync?sslmode=verify-full&sslrootcert=$TMP/othertls/ca.crt" \
	    -XAtc 'SELECT 1' >/dev/null 2>&1; then
		fail "a certificate from another CA was accepted"
	fi
	if psql "postgresql://crmsync_analyst:analyst-pw@localhost:$port/postgres?sslmode=require" -XAtc 'SELECT 1' >/dev/null 2>&1; then
		fail "analyst reached another database"
	fi
	ok "analyst reads, cannot write or create; plain TCP, a foreign CA and other databases refused"
	CS_CTL_PG_DSN=$adsn CS_PG_DSN='' CS_STORE_HEALTH_URL="ipc://$TMP/store-health.sock" \
	    CS_GATEWAY_HEALTH_URL="ipc://$TMP/none1.sock" CS_AMO_HEALTH_URL="ipc://$TMP/none2.sock" \
	    CS_HOLLIHOP_HEALTH_URL="ipc://$TMP/none3.sock" \
	    "$TMP/img-store/usr/local/bin/crmsyncctl" status >"$TMP/status.log" 2>&1 || true
	if ! grep -q '^store  *up ' "$TMP/status.log" || ! grep -q 'Recent sync runs' "$TMP/status.log"; then
		cat "$TMP/status.log"
		fail "crmsyncctl status as the analyst"
	fi
	ok "crmsyncctl status reads crmsync.* as crmsync_analyst"
	kill "$STORE_PID"
	wait "$STORE_PID" || fail "store exit status $?"
	STORE_PID=""
fi

printf '\nall deploy checks passed in %ss\n' $(($(date +%s) - T0))
