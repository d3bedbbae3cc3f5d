#!/usr/bin/env bash
# Builds the fastdfs-rs image (tag fastdfs-rs:dev, or $1) from this checkout:
# a static musl build of `fdfs` in an image FROM scratch. Needs no registry.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-fastdfs-rs:dev}"
target=x86_64-unknown-linux-musl

rustup target add "$target" >/dev/null 2>&1 || true
# ring (rustls's crypto, the cluster secret's HMAC) compiles C: it needs a
# musl C compiler. Debian's musl-tools provides musl-gcc.
if [ -z "${CC_x86_64_unknown_linux_musl:-}" ] && ! command -v x86_64-linux-musl-gcc >/dev/null; then
    if ! command -v musl-gcc >/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get install -y -qq musl-tools >/dev/null ||
                { apt-get update -qq >/dev/null && apt-get install -y -qq musl-tools >/dev/null; }
        fi
        command -v musl-gcc >/dev/null ||
            { echo "build.sh: musl-gcc is missing (apt-get install musl-tools)" >&2; exit 1; }
    fi
    export CC_x86_64_unknown_linux_musl=musl-gcc
fi
cargo build --release --locked --target "$target" -p fdfs

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/bin" "$root/etc/fdfs" "$root/tmp" "$ctx/rootfs-data"
install -m 0755 "${CARGO_TARGET_DIR:-target}/$target/release/fdfs" "$root/usr/bin/fdfs"
for name in fdfs_trackerd fdfs_storaged fdfs_upload_file fdfs_download_file \
    fdfs_delete_file fdfs_file_info fdfs_upload_appender fdfs_append_file \
    fdfs_monitor fdfs_crc32 fdfs_test fdfs_regenerate_filename; do
    ln -s fdfs "$root/usr/bin/$name"
done
# Samples only: a conf mounted at /etc/fdfs/<name>.conf is used as it is.
for conf in conf/*.conf; do
    cp "$conf" "$root/etc/fdfs/$(basename "$conf").sample"
done
[ -f conf/mime.types ] && cp conf/mime.types "$root/etc/fdfs/mime.types"
printf 'root:x:0:0:root:/:/usr/bin/fdfs\nfdfs:x:1000:1000:fastdfs:/var/fdfs:/usr/bin/fdfs\n' > "$root/etc/passwd"
printf 'root:x:0:\nfdfs:x:1000:\n' > "$root/etc/group"
chmod 1777 "$root/tmp"
cp docker/Dockerfile "$ctx/Dockerfile"
docker build --quiet -t "$tag" "$ctx" >/dev/null
docker image inspect "$tag" --format '{{.Size}}' | awk -v t="$tag" '{ printf "built %s: %.1f MB\n", t, $1 / 1000000 }'
