#!/usr/bin/env bash
# Proof that the camera and recognizer nodes run on 64-bit ARM (what a Raspberry Pi 4/5 with Raspberry Pi
# OS Bookworm runs), under emulation on an x86-64 Debian machine. Not run by CI: 25-40 minutes.
#
#   sudo scripts/arm64-check.sh [WORKDIR]        (default: /tmp/homesec-arm64; keep it outside the repo)
#   ARM64_CHECK_TESTS="tests/test_camera_rtsp.py ..." runs only those tests (default: camera, recognizer)
#
# 1. debootstrap a Debian bookworm arm64 root (qemu-user-static runs its binaries),
# 2. copy this working tree into it and install the camera and recognizer extras (plus the test tools)
#    in a venv made --system-site-packages, as on a Pi (docs/raspberry-pi.md),
# 3. install the face models there and run the camera and recognizer tests,
# 4. embed the same photos on arm64 and on this machine's .venv and compare (cosine must exceed 0.999),
# 5. run scripts/install-pi.sh there as on a Pi (without apt: Debian has no python3-picamera2).
# Every step's figures go to WORKDIR/figures.txt. A step that finished is not run again (stamp files in
# WORKDIR) until the code it checks changes: delete WORKDIR/root to start over. Needs root, debootstrap, qemu-user-static, binfmt-support
# (apt-get install qemu-user-static debootstrap binfmt-support) and the x86 .venv (scripts/bootstrap.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/homesec-arm64}
root=$work/root
figures=$work/figures.txt
suite=bookworm
# The tests' real peers, as CI installs them on x86: GStreamer's RTSP server for the camera streams.
test_packages=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
min_cosine=0.999
failed="" # the checks that failed, reported at the end

die() { echo "arm64-check: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mounts need it)"
for tool in debootstrap qemu-aarch64-static update-binfmts chroot; do
  command -v "$tool" >/dev/null || die "missing $tool: apt-get install qemu-user-static debootstrap binfmt-support"
done
[ -x "$repo/.venv/bin/homesec" ] || die "no x86 .venv: run scripts/bootstrap.sh first"
case "$work" in "$repo"/*) die "WORKDIR must be outside the repository (it holds a whole Debian root)" ;; esac
mkdir -p "$work"

note() { echo "$*" | tee -a "$figures"; }
# Wall time of a step, in the figures file: "step: 123 s".
timed() {
  local name=$1 start
  shift
  start=$(date +%s)
  "$@"
  note "$name: $(($(date +%s) - start)) s"
}

# The apt mirror this machine uses (deb822 URIs: first, else a one-line source), else Debian's.
mirror() {
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/debian.sources |
    awk '{print $2}' | grep -m1 '/debian/\?$' || true)
  [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -m1 '/debian/\?$' || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# --- emulation and mounts (undone on exit, whatever happens) ---------------------------------------
mounted=()
binfmt_mounted=no
binfmt_enabled=no
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  [ "$binfmt_enabled" = yes ] && update-binfmts --disable qemu-aarch64 2>/dev/null || true
  [ "$binfmt_mounted" = yes ] && umount /proc/sys/fs/binfmt_misc 2>/dev/null || true
}
trap cleanup EXIT

enable_emulation() {
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
    binfmt_mounted=yes
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    update-binfmts --enable qemu-aarch64
    binfmt_enabled=yes
  fi
}

mount_into_root() {
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # minbase writes no /etc/hosts: tests and HTTP clients need `localhost`
  grep -qs '^127.0.0.1[[:space:]].*localhost' "$root/etc/hosts" ||
    printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >>"$root/etc/hosts"
  mount -t proc proc "$root/proc" && mounted+=("$root/proc")
  mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev" && mounted+=("$root/dev")
  mount -t sysfs sys "$root/sys" && mounted+=("$root/sys")
  # onnxruntime reads /proc/cpuinfo to pick its kernels: the x86 host's crashes it under qemu-user.
  # A Raspberry Pi 4's (Cortex-A72) lets it load.
  cat >"$work/cpuinfo" <<'EOF'
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

processor	: 1
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

Hardware	: BCM2835
Model		: Raspberry Pi 4 Model B Rev 1.4
EOF
  mount --bind "$work/cpuinfo" "$root/proc/cpuinfo" && mounted+=("$root/proc/cpuinfo")
}

# A command inside the arm64 root, with a clean environment (this machine's PIP_* variables point at
# folders the root does not have).
in_root() {
  env -i PATH=/opt/homesec/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 QEMU_CPU=cortex-a72 PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 HOMESEC_MODELS_DIR=/opt/homesec/models \
    chroot "$root" "$@"
}

# --- steps ------------------------------------------------------------------------------------------
bootstrap_root() {
  rm -rf "$root"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,mosquitto \
    "$suite" "$root" "$(mirror)"
}

# This machine's CA certificates (an egress proxy may re-sign TLS) and nothing else of its pip setup.
trust_host_certificates() {
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  in_root update-ca-certificates >/dev/null
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$root/etc/pip.conf"
}

# The working tree as it is now (tracked and untracked files, not what .gitignore names).
copy_repository() {
  rm -rf "$root/opt/homesec/src"
  mkdir -p "$root/opt/homesec/src"
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -C "$root/opt/homesec/src" -xf -
}

# Installed with the root's own apt and dpkg (not this machine's).
install_test_packages() {
  in_root apt-get update -qq
  in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${test_packages[@]}" >/dev/null
}

install_homesec() {
  in_root python3 -m venv --system-site-packages /opt/homesec/.venv
  in_root python -m pip install -q --upgrade pip
  in_root python -m pip install -q -e '/opt/homesec/src[camera,recognizer,dev]'
  in_root python -m pip list --format=freeze >"$work/arm64-packages.txt"
}

install_models() {
  in_root homesec models install --models-dir /opt/homesec/models
}

# The camera and recognizer tests (and the model files' checks), run as on the x86 machine.
run_tests() {
  local files=${ARM64_CHECK_TESTS:-}
  [ -n "$files" ] || files=$(cd "$root/opt/homesec/src" && ls tests/test_camera_*.py tests/test_recognizer_*.py tests/test_models.py)
  # A failing test is a finding, not the end of the check: the embeddings are compared anyway. The
  # tests' waits are stretched 10x (HOMESEC_TEST_TIME_SCALE): emulation is 10-20x slower than x86.
  in_root sh -c "cd /opt/homesec/src && HOMESEC_TEST_TIME_SCALE=10 python -m pytest -q -p no:cacheprovider \
    -o timeout=1200 $(echo $files)" >"$work/arm64-tests.txt" 2>&1 || failed="$failed tests"
  tail -30 "$work/arm64-tests.txt"
  note "arm64 tests ($(echo "$files" | wc -w) files): $(grep -E '(passed|failed|error)' "$work/arm64-tests.txt" | tail -1)"
  compare_failures_with_x86
}

# The tests that failed on arm64, run again on this machine's .venv with the same copy of the tree: a
# test that fails there too fails because of the tree, not because of arm64.
compare_failures_with_x86() {
  local ids x86_failed arm_only=""
  ids=$(sed -n 's/^\(FAILED\|ERROR\) \([^ ]*\).*/\2/p' "$work/arm64-tests.txt" | sort -u)
  [ -n "$ids" ] || return 0
  # shellcheck disable=SC2086
  (cd "$root/opt/homesec/src" && HOMESEC_MODELS_DIR="$repo/.homesec-data/models" \
    "$repo/.venv/bin/python" -m pytest -q -p no:cacheprovider $ids) >"$work/x86-retest.txt" 2>&1 || true
  x86_failed=$(sed -n 's/^\(FAILED\|ERROR\) \([^ ]*\).*/\2/p' "$work/x86-retest.txt" | sort -u)
  for id in $ids; do
    grep -qxF "$id" <<<"$x86_failed" || arm_only="$arm_only $id"
  done
  note "  failing on x86 too, with the same tree: $(echo "$x86_failed" | grep -c . || true)"
  note "  failing on arm64 only: $(echo "$arm_only" | wc -w)${arm_only:+ ($arm_only )}"
}

# scripts/install-pi.sh as a person runs it on the Pi, into a prefix of its own (the venv above holds
# the test tools), then the installed camera program as the service's user.
install_pi() {
  local result=ok
  if ! in_root /opt/homesec/src/scripts/install-pi.sh --no-apt --prefix /opt/homesec-pi --server 127.0.0.1 \
    >"$work/install-pi.txt" 2>&1 ||
    ! in_root runuser -u homesec -- /opt/homesec-pi/.venv/bin/homesec-camera --help >/dev/null; then
    result=failed
    failed="$failed install-pi"
  fi
  tail -5 "$work/install-pi.txt"
  note "install-pi.sh --no-apt: $result"
}

# What the tests check: when none of it changed, the copy and the tests are not run again.
tree_hash() {
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard -- pyproject.toml homesec camera_node \
    recognizer_node notifier_node tests scripts/install-pi.sh deploy | xargs -0 cat 2>/dev/null | sha256sum | cut -d' ' -f1)
}

# The same code on both sides: the copy in the root (on x86, run from the copy, which comes first on the
# path), so that only the machine differs.
compare_embeddings() {
  local photos=() name
  for name in biden_train obama_other obama_probe obama_train rose_a rose_b two_faces; do
    photos+=("tests/data/faces/$name.jpg")
  done
  (cd "$root/opt/homesec/src" && "$repo/.venv/bin/python" -m homesec faces embed --json \
    --models-dir "$repo/.homesec-data/models" "${photos[@]}") >"$work/x86.jsonl"
  in_root sh -c "cd /opt/homesec/src && homesec faces embed --json --models-dir /opt/homesec/models ${photos[*]}" \
    >"$work/arm64.jsonl"
  if ! "$repo/.venv/bin/python" - "$work/x86.jsonl" "$work/arm64.jsonl" "$min_cosine" <<'EOF' | tee -a "$figures"; then
import json, sys
import numpy as np

def faces(path):
    return {(r["path"], i): np.array(f["embedding"]) for r in map(json.loads, open(path)) for i, f in enumerate(r["faces"])}

x86, arm, limit = faces(sys.argv[1]), faces(sys.argv[2]), float(sys.argv[3])
if x86.keys() != arm.keys():
    sys.exit(f"different faces found: x86 {sorted(x86)} arm64 {sorted(arm)}")
cos = {k: float(x86[k] @ arm[k] / (np.linalg.norm(x86[k]) * np.linalg.norm(arm[k]))) for k in x86}
for (path, i), c in sorted(cos.items()):
    print(f"  {path} face {i}: cosine {c:.7f}")
print(f"embeddings arm64 vs x86: {len(cos)} faces, lowest cosine {min(cos.values()):.7f} (limit {limit})")
sys.exit(0 if min(cos.values()) > limit else 1)
EOF
    failed="$failed embeddings"
  fi
}

# Runs a step once: its stamp file says it finished.
step() {
  local name=$1
  shift
  if [ -e "$work/.done-$name" ]; then
    echo "==> $name: done before"
    return
  fi
  echo "==> $name"
  local before=$failed
  timed "$name" "$@"
  [ "$failed" != "$before" ] || touch "$work/.done-$name" # a failed check runs again next time
}

note "arm64-check $(date -u +%FT%TZ) on $(uname -m), $(nproc) cores, $(qemu-aarch64-static --version | head -1)"
enable_emulation
[ -e "$root/usr/bin/python3" ] || rm -f "$work"/.done-*
step debootstrap bootstrap_root
mount_into_root
step certificates trust_host_certificates
step test-packages install_test_packages
# The tree changed since the last run: copy and test again; reinstall if the dependencies changed.
hash=$(tree_hash)
if [ "$(cat "$work/tree.sha256" 2>/dev/null)" != "$hash" ]; then
  rm -f "$work/.done-copy" "$work/.done-tests" "$work/.done-embeddings" "$work/.done-install-pi"
fi
cmp -s "$repo/pyproject.toml" "$root/opt/homesec/src/pyproject.toml" || rm -f "$work/.done-install"
step copy copy_repository
echo "$hash" >"$work/tree.sha256"
step install install_homesec
step models install_models
step tests run_tests
step embeddings compare_embeddings
step install-pi install_pi
note "arm64-check finished $(date -u +%FT%TZ)${failed:+, failed:$failed}"
[ -z "$failed" ]
