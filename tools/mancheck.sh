#!/bin/sh
# mancheck.sh — check the manual pages strictly, as CI does.
#
#   tools/mancheck.sh [PAGE...]      (default: man/*.[1378])
#
# Two checks per page, both must be silent:
#   mandoc -T lint -W warning PAGE      mdoc(7) structure, macros, style
#   man --warnings -l PAGE >/dev/null   groff (what man(1) users get)
# Exit status: 0 all clean, 1 a page has warnings, 2 a tool is missing.
# Needs mandoc (Debian: apt-get install mandoc) and man-db.

top=$(cd "$(dirname "$0")/.." && pwd) || exit 2

for tool in mandoc man; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "mancheck: $tool not found (Debian: apt-get install mandoc man-db)" >&2
        exit 2
    fi
done

if [ $# -eq 0 ]; then
    set -- "$top"/man/*.[1378]
    if [ ! -e "$1" ]; then
        echo "mancheck: no pages in $top/man" >&2
        exit 2
    fi
fi

# The same line width everywhere, so groff's line-breaking warnings do not
# depend on the terminal CI happens to have.
MANWIDTH=80
export MANWIDTH

status=0
for page in "$@"; do
    if [ ! -r "$page" ]; then
        echo "mancheck: $page: cannot read" >&2
        status=1
        continue
    fi
    out=$(mandoc -T lint -W warning "$page" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] || [ -n "$out" ]; then
        printf '%s\n' "$out"
        echo "mancheck: $page: mandoc -T lint -W warning failed (status $rc)" >&2
        status=1
    fi
    out=$(man --warnings -l "$page" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -ne 0 ] || [ -n "$out" ]; then
        printf '%s\n' "$out"
        echo "mancheck: $page: man --warnings reported problems (status $rc)" >&2
        status=1
    fi
done
if [ $status -eq 0 ]; then
    echo "mancheck: $# page(s) clean"
fi
exit $status
