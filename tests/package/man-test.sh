#!/usr/bin/env bash
# The man pages under docs/man/:
#   - every page renders (man --warnings=w -l, MANWIDTH=80: every groff warning, the macro
#     ones of plain --warnings included) without a word on stderr, where man and groff print
#     their warnings (man's exit status says nothing about them);
#   - every .so link page points at a page that exists (and is not a link itself);
#   - every page has the sections its kind needs (man3: NAME ... SEE ALSO; tools: OPTIONS,
#     EXIT STATUS, EXAMPLES ...);
#   - every function of the API, that is every urp_* symbol BUILD_DIR/liburpoll.so exports plus
#     the static inline helpers of include/urpoll.h, has a page in man3 (its own or a .so link)
#     whose SYNOPSIS shows its prototype as urpoll.h declares it;
#   - every installed tool has a page in man1 or man8 that names each option its --help lists.
#
#   tests/package/man-test.sh BUILD_DIR [MAN_DIR]      (MAN_DIR: docs/man)
#
# The result is recorded as "man" (tests/run-suite.sh --record).
set -uo pipefail
build=${1:?usage: man-test.sh BUILD_DIR [MAN_DIR]}
man_dir=${2:-docs/man}
header=include/urpoll.h
tools=(urpoll-trace urpoll-proxy urpoll-echo urpoll-bench)
errors=0

record() { tests/run-suite.sh --record man "$1"; }
problem() {
	echo "man-test: $*" >&2
	errors=$((errors + 1))
}

if ! command -v man >/dev/null || ! command -v groff >/dev/null; then
	echo "man-test: needs man (man-db) and groff (make deps)" >&2
	record fail
	exit 1
fi
[ -f "$build/liburpoll.so" ] || { echo "man-test: no $build/liburpoll.so (make)" >&2; record fail; exit 1; }

# Render PAGE (relative to man_dir, where .so requests resolve) as plain text, WIDTH columns.
render() {
	(cd "$man_dir" && LC_ALL=C MANWIDTH=$2 man --warnings -l "$1" 2>/dev/null)
}

mapfile -t pages < <(cd "$man_dir" && find . -name '*.[1-8]' -type f | sed 's|^\./||' | sort)
[ ${#pages[@]} -gt 0 ] || problem "no pages under $man_dir"

for page in "${pages[@]}"; do
	first=$(head -n 1 "$man_dir/$page")
	if [[ $first == .so\ * ]]; then
		target=${first#.so }
		if [ "$(wc -l <"$man_dir/$page")" -ne 1 ]; then
			problem "$page: a link page holds its .so line only"
		elif [ ! -f "$man_dir/$target" ]; then
			problem "$page: .so $target: no such page"
		elif head -n 1 "$man_dir/$target" | grep -q '^\.so '; then
			problem "$page: .so $target: a link to a link"
		fi
	fi
	warnings=$(cd "$man_dir" && MANWIDTH=80 man --warnings=w -l "$page" 2>&1 >/dev/null)
	[ -z "$warnings" ] || problem "$page: man --warnings=w:"$'\n'"$warnings"
	[[ $first == .so\ * ]] && continue

	case $page in
	man3/*) need=(NAME SYNOPSIS DESCRIPTION "RETURN VALUE" ERRORS NOTES "SEE ALSO") ;;
	man1/* | man8/*) need=(NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" EXAMPLES "SEE ALSO") ;;
	*) need=(NAME DESCRIPTION "SEE ALSO") ;;
	esac
	for section in "${need[@]}"; do
		grep -Eq "^\.SH \"?$section\"?\$" "$man_dir/$page" || problem "$page: no $section section"
	done
	name=$(basename "$page")
	grep -Eq "^\.TH \"?${name%.*}\"? ${name##*.} " "$man_dir/$page" ||
		problem "$page: its .TH line does not name ${name%.*} in section ${name##*.}"
done

# The API: what the library exports, and the inline helpers the header defines.
mapfile -t symbols < <({
	nm -D --defined-only "$build/liburpoll.so" | awk '$2 == "T" && $3 ~ /^urp_/ { sub(/@.*/, "", $3); print $3 }'
	grep -oE '^static inline [^(]*\burp_[a-z0-9_]+\(' "$header" | grep -oE 'urp_[a-z0-9_]+\($' | tr -d '('
} | sort -u)
[ ${#symbols[@]} -gt 0 ] || problem "no urp_* symbols in $build/liburpoll.so"

for sym in "${symbols[@]}"; do
	[ -f "$man_dir/man3/$sym.3" ] || problem "$sym: no page man3/$sym.3 (its own, or a .so link)"
done

# Each page's SYNOPSIS, rendered wide (so that nothing wraps), against the header: both with
# comments, preprocessor lines and white space taken out.
synopsis_dir=$(mktemp -d)
trap 'rm -rf "$synopsis_dir"' EXIT
for sym in "${symbols[@]}"; do
	[ -f "$man_dir/man3/$sym.3" ] || continue
	render "man3/$sym.3" 250 | awk '/^SYNOPSIS/ { on = 1; next } /^[A-Z]/ { on = 0 } on' \
		>"$synopsis_dir/$sym"
done
mismatches=$(python3 - "$header" "$synopsis_dir" "${symbols[@]}" <<'PY'
import re
import sys

header_path, synopsis_dir, symbols = sys.argv[1], sys.argv[2], sys.argv[3:]


def clean(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))


def declaration(text, name):
    """The declaration of function name in text: from the end of the statement before it to
    its closing parenthesis, white space made single and dropped around punctuation; None
    when text does not declare it."""
    for m in re.finditer(r"(?<![\w])" + re.escape(name) + r"\s*\(", text):
        start = max(text.rfind(c, 0, m.start()) for c in ";{}") + 1
        depth, i = 0, m.end() - 1
        while i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        rest = text[i + 1:].lstrip()
        if not rest or rest[0] not in ";{":
            continue  # a call or a use, not a declaration
        decl = re.sub(r"\s+", " ", text[start:i + 1]).strip()
        return re.sub(r"\s*([()*,\[\]])\s*", r"\1", decl)
    return None


header = clean(open(header_path).read())
for name in symbols:
    want = declaration(header, name)
    if want is None:
        print(f"{name}: exported, but {header_path} does not declare it")
        continue
    try:
        synopsis = clean(open(f"{synopsis_dir}/{name}").read())
    except FileNotFoundError:
        continue
    got = declaration(synopsis, name)
    if got is None:
        print(f"{name}: its page's SYNOPSIS does not declare it")
    elif got != want:
        print(f"{name}: SYNOPSIS says {got!r}, {header_path} says {want!r}")
PY
)
[ -z "$mismatches" ] || while IFS= read -r line; do problem "$line"; done <<<"$mismatches"

# The tools make install puts in BINDIR (or may): a page each, naming every option of --help.
for tool in "${tools[@]}"; do
	page=
	for candidate in man1/"$tool".1 man8/"$tool".8; do
		[ -f "$man_dir/$candidate" ] && page=$candidate && break
	done
	if [ -z "$page" ]; then
		problem "$tool: no page man1/$tool.1 or man8/$tool.8"
		continue
	fi
	if [ ! -x "$build/tools/$tool" ]; then
		problem "$tool: no $build/tools/$tool to ask for --help (make tools)"
		continue
	fi
	text=$(render "$page" 200)
	mapfile -t options < <("$build/tools/$tool" --help 2>&1 |
		grep -oE '^ +(-[a-zA-Z?], )?--[a-z][a-z-]*' | grep -oE -- '--[a-z][a-z-]*|-[a-zA-Z?]')
	[ ${#options[@]} -gt 0 ] || problem "$tool: --help lists no option"
	for opt in "${options[@]}"; do
		# The option as a word of its own: --pin is not found in --pinned.
		grep -qE -- "(^|[^[:alnum:]-])${opt//\?/\\?}(\$|[^[:alnum:]-])" <<<"$text" ||
			problem "$page: does not mention $opt (from $tool --help)"
	done
done

if [ "$errors" -ne 0 ]; then
	echo "man-test: $errors problem(s) in ${#pages[@]} pages" >&2
	record fail
	exit 1
fi
echo "man-test: ok (${#pages[@]} pages; ${#symbols[@]} functions and ${#tools[@]} tools covered)"
record pass
