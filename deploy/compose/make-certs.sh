#!/bin/sh
# make-certs.sh - a private CA and a server certificate signed by it, for PostgreSQL on
# server B (and for tests). The store verifies it with sslmode=verify-full, so list every
# name and address the store may dial; the first name is also the subject.
#   deploy/compose/make-certs.sh DIR NAME [NAME|IP ...]
#   -> DIR/ca.crt (give to server A as tls/pg-ca.crt), DIR/ca.key (keep offline),
#      DIR/server.crt, DIR/server.key (mode 0600)
# An existing CA in DIR is reused, so re-running renews only the server certificate.
set -eu
[ $# -ge 2 ] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
dir=$1
shift
cn=$1
mkdir -p "$dir"
umask 077
san=""
for n in "$@"; do
	case $n in
	*:*) san="$san,IP:$n" ;;	# IPv6
	*[!0-9.]*) san="$san,DNS:$n" ;;
	*) san="$san,IP:$n" ;;
	esac
done
san=${san#,}
if [ ! -s "$dir/ca.key" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	    -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 3650 -subj "/CN=crmsync private CA" \
	    -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
fi
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=$cn" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=CA:false\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
    "$san" >"$dir/server.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/server.crt" -days 825 -extfile "$dir/server.ext" 2>/dev/null
rm -f "$dir/server.csr" "$dir/server.ext" "$dir/ca.srl"
chmod 0644 "$dir/ca.crt" "$dir/server.crt"
echo "make-certs: $dir/server.crt for $san, signed by $dir/ca.crt"
