#!/bin/sh
# Builds the Debian package (debian/) with dpkg-buildpackage from a copy of the tree, since
# it writes its results beside the source directory: OUT/postern_VERSION_ARCH.deb with its
# .buildinfo and .changes. Usage: scripts/deb.sh [OUT]   (default build-deb/)
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$root/build-deb}" && cd "${1:-$root/build-deb}" && pwd)
version=$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version)
work="$out/src"
src="$work/postern-$version"

rm -rf "$work" "$out"/postern_* "$out"/postern-dbgsym_*
mkdir -p "$src"
# The tree as committed plus new files, without what .gitignore leaves out (build trees,
# node_modules, var/); a tree that is not a git checkout is copied without those by name.
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$root" && git ls-files -z --cached --others --exclude-standard |
		tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$src"
else
	tar -C "$root" --exclude=./build --exclude='./build-*' --exclude=./var \
		--exclude=node_modules -cf - . | tar -xf - -C "$src"
fi
(cd "$src" && dpkg-buildpackage -us -uc -b -j"${JOBS:-$(nproc)}")
mv "$work"/postern*_"$version"_* "$out"/
rm -rf "$work"
ls "$out"/postern_*.deb
