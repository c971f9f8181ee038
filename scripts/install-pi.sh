#!/usr/bin/env bash
# Install the camera node on a Raspberry Pi (64-bit Raspberry Pi OS Bookworm), from this repository:
#
#   sudo scripts/install-pi.sh --server 192.168.1.10 [--port 1884] [--camera door] [--password-file FILE]
#   (--no-apt: the apt packages are there already, or this is not Raspberry Pi OS; --prefix: not /opt/homesec)
#
# - apt: python3-picamera2 and python3-lgpio (Raspberry Pi OS packages: picamera2 cannot be built from
#   PyPI without the system's libcamera) and python3-venv;
# - a system user `homesec` (in the video and gpio groups), a venv in /opt/homesec/.venv made
#   --system-site-packages so it sees picamera2, and `pip install '.[camera]'` into it, with numpy held
#   at the system's version (picamera2's JPEG helper is compiled against it);
# - /etc/homesec/homesec.toml (from deploy/camera.toml, unless it exists), the data dir /var/lib/homesec
#   and the unit homesec-camera.service (deploy/), not yet started unless the password is there.
# Run again to upgrade: the venv is updated, an existing config is kept. Steps: docs/raspberry-pi.md.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/homesec
config_dir=/etc/homesec
data_dir=/var/lib/homesec
server="" port=1884 camera=door password_file="" apt=yes

usage() { sed -n '3,5p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --server) server=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --camera) camera=$2; shift 2 ;;
    --password-file) password_file=$2; shift 2 ;;
    --no-apt) apt=no; shift ;;
    --prefix) prefix=$2; shift 2 ;;
    -h | --help) usage ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done
die() { echo "install-pi: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (sudo): it installs packages, a user and a systemd unit"
[ -n "$server" ] || [ -e "$config_dir/homesec.toml" ] || die "--server HOST: the home server's address is needed"
[[ "$camera" =~ ^[a-z0-9_-]{1,32}$ ]] || die "--camera: 1-32 of a-z, 0-9, '_', '-'"
[[ "$port" =~ ^[0-9]+$ ]] || die "--port: a number"
[ "$(uname -m)" = aarch64 ] || echo "install-pi: note: $(uname -m), not 64-bit ARM; the tested Pi setup is 64-bit" >&2

if [ "$apt" = yes ]; then
  echo "==> apt: picamera2, lgpio, venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3-picamera2 python3-lgpio python3-venv python3-pip ||
    die "apt-get failed: python3-picamera2 comes from Raspberry Pi OS's archive (on other systems: --no-apt)"
fi

echo "==> user homesec"
id homesec >/dev/null 2>&1 ||
  useradd --system --home-dir "$data_dir" --no-create-home --shell /usr/sbin/nologin homesec
for group in video gpio; do # the camera's and the PIR's devices; systemd applies the user's groups
  if getent group "$group" >/dev/null; then usermod -a -G "$group" homesec; fi
done
install -d -o homesec -g homesec -m 700 "$data_dir" "$data_dir/secrets"
install -d -o root -g homesec -m 750 "$config_dir"

echo "==> venv $prefix/.venv (system site packages: picamera2, lgpio)"
install -d -m 755 "$prefix"
[ -x "$prefix/.venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$prefix/.venv"
# Keep the system's numpy (picamera2's simplejpeg is built against it); pip installs nothing over it.
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
system_numpy=$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)
[ -z "$system_numpy" ] || echo "numpy==$system_numpy" >"$constraints"
"$prefix/.venv/bin/python" -m pip install -q --upgrade pip
"$prefix/.venv/bin/python" -m pip install -q --constraint "$constraints" "$repo[camera]"

config=$config_dir/homesec.toml
if [ -e "$config" ]; then
  echo "==> $config exists: kept"
else
  echo "==> $config"
  sed -e "s/@SERVER@/$server/" -e "s/@PORT@/$port/" -e "s/@CAMERA@/$camera/" "$repo/deploy/camera.toml" >"$config.new"
  chown root:homesec "$config.new" && chmod 640 "$config.new" && mv "$config.new" "$config"
fi
camera=$(HOMESEC_CONFIG=$config "$prefix/.venv/bin/python" -c \
  'from homesec.config import load_config; from camera_node.settings import CameraSettings as C; print(load_config().section(C).id)')
password=$data_dir/secrets/mqtt-camera-$camera.password
if [ -n "$password_file" ]; then
  install -o homesec -g homesec -m 600 "$password_file" "$password"
fi

echo "==> systemd unit homesec-camera.service"
sed "s|/opt/homesec/|$prefix/|g" "$repo/deploy/homesec-camera.service" >/etc/systemd/system/homesec-camera.service
chmod 644 /etc/systemd/system/homesec-camera.service
[ -d /run/systemd/system ] && systemctl daemon-reload

echo "==> checks"
as_homesec() { runuser -u homesec -- env HOMESEC_CONFIG="$config" HOMESEC_DATA_DIR="$data_dir" "$@"; }
(cd "$data_dir" && as_homesec "$prefix/.venv/bin/homesec" config check)
if ! as_homesec "$prefix/.venv/bin/python" -c 'import picamera2' 2>/dev/null; then
  echo "install-pi: warning: picamera2 does not import in the venv (not Raspberry Pi OS, or python3-picamera2 missing)" >&2
fi
in_venv_numpy=$("$prefix/.venv/bin/python" -c 'import numpy; print(numpy.__file__)')
case "$in_venv_numpy" in
  "$prefix"/*) [ -z "$system_numpy" ] || die "pip put its own numpy in the venv ($in_venv_numpy): picamera2 would break" ;;
esac

echo
echo "Installed. Next:"
if [ ! -s "$password" ]; then
  echo "  1. copy this camera's password from the server (secrets/mqtt-camera-$camera.password there):"
  echo "       sudo install -o homesec -g homesec -m 600 mqtt-camera-$camera.password $password"
fi
echo "  2. sudo systemctl enable --now homesec-camera && journalctl -u homesec-camera -f"
echo "  On the server: homesec status lists camera/$camera once it is online."
