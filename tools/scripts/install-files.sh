#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make install` and `make uninstall`, with a manifest of what install created:
#
#   install-files.sh MANIFEST dir DIR...              make each DIR and its missing parents,
#                                                     listing every directory it creates
#   install-files.sh MANIFEST file MODE DIR FILE...   install each FILE into DIR (which exists)
#   install-files.sh MANIFEST link TARGET PATH        make PATH a symbolic link to TARGET
#   install-files.sh MANIFEST uninstall               remove the files MANIFEST lists, then its
#                                                     directories, deepest first, each only when
#                                                     empty; then MANIFEST
#
# MANIFEST gets a line per directory ("dir PATH") and per file or link ("file PATH"), appended:
# installing again to the same place adds to it, so a directory the first install created is
# still removed once. A directory that existed before is never listed, so never removed.
set -euo pipefail
manifest=${1:?usage: install-files.sh MANIFEST dir|file|link|uninstall ...}
cmd=${2:?usage: install-files.sh MANIFEST dir|file|link|uninstall ...}
shift 2

note() { printf '  %-7s %s\n' "$1" "$2"; }
record() { printf '%s %s\n' "$1" "$2" >>"$manifest"; }

mkdir -p "$(dirname "$manifest")"
case $cmd in
dir)
	for dir in "$@"; do
		# The missing ancestors, outermost first, then the directory itself.
		missing=()
		d=$dir
		while [ -n "$d" ] && [ ! -e "$d" ] && [ ! -L "$d" ]; do
			missing=("$d" "${missing[@]}")
			case $d in */*) d=${d%/*} ;; *) d= ;; esac
		done
		for d in "${missing[@]}"; do
			mkdir "$d"
			record dir "$d"
			note MKDIR "$d"
		done
		[ -d "$dir" ] || { echo "install-files: $dir: not a directory" >&2; exit 1; }
	done
	;;
file)
	mode=$1 dir=$2
	shift 2
	for f in "$@"; do
		install -m "$mode" "$f" "$dir/"
		record file "$dir/${f##*/}"
		note INSTALL "$dir/${f##*/}"
	done
	;;
link)
	ln -sfn "$1" "$2"
	record file "$2"
	note LN "$2 -> $1"
	;;
uninstall)
	[ -f "$manifest" ] || { echo "install-files: no manifest $manifest" >&2; exit 1; }
	# Last recorded first: a directory is always recorded after its parent.
	mapfile -t lines < <(tac "$manifest" | awk '!seen[$0]++')
	for line in "${lines[@]}"; do
		path=${line#* }
		if [ "${line%% *}" = file ] && { [ -e "$path" ] || [ -L "$path" ]; }; then
			rm -f "$path"
			note RM "$path"
		fi
	done
	for line in "${lines[@]}"; do
		path=${line#* }
		[ "${line%% *}" = dir ] && [ -d "$path" ] || continue
		if rmdir "$path" 2>/dev/null; then
			note RMDIR "$path"
		else
			echo "install-files: kept $path: it holds what install did not put there" >&2
		fi
	done
	rm -f "$manifest"
	;;
*)
	echo "install-files: unknown command $cmd" >&2
	exit 2
	;;
esac
