#!/usr/bin/env bash
# man.sh BIN SECTION DESCRIPTION OUT: a man page from BIN --help (the
# flags' own text, so the page cannot drift from the binary), gzipped -n
# (no timestamp: reproducible, and lintian wants it compressed).
set -euo pipefail
bin=$1 sec=$2 desc=$3 out=$4
name=$(basename "$bin")
help=$("$bin" --help 2>&1 || true)
ver=$("$bin" --version | awk '{print $2}')
esc() { sed -e 's/\\/\\e/g' -e 's/^\([.'"'"']\)/\\\&\1/'; }
{
	echo ".TH ${name^^} $sec \"\" \"detour $ver\" \"detour\""
	echo ".SH NAME"
	echo "$name \\- $desc"
	echo ".SH SYNOPSIS"
	case $name in
	naming-agent) echo ".B naming-agent --config /etc/detour/agent.yaml" ;;
	sidecar) echo ".B sidecar --agent 127.0.0.1:7701 --host-ip IP --admin 127.0.0.1:7702" ;;
	detourctl) echo ".B detourctl COMMAND [ARGS] [FLAGS]" ;;
	esac
	echo ".SH OPTIONS"
	echo ".nf"
	printf '%s\n' "$help" | esc
	echo ".fi"
	echo ".SH FILES"
	echo ".TP"
	echo "/etc/detour/agent.yaml, /etc/detour/sidecar.env"
	echo "configuration (conffiles: kept across upgrades)"
	echo ".TP"
	echo "/var/lib/detour"
	echo "the agent's data: port assignments, endpoint cache, publications, registry session"
	echo ".SH SEE ALSO"
	echo "naming-agent(8), sidecar(8), detourctl(1), /usr/share/doc/detour/OPERATIONS.md.gz"
} | gzip -9n >"$out"
