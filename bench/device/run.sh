#!/usr/bin/env bash
# On the many-core machine, from the checkout's root: unpack .dev/pack.tar.xz (bench/device/pack.sh made it)
# and run bench/scale.py with the packed Python and components; its arguments go to bench/scale.py.
set -u
cd "$(dirname "$0")/.."
packed=/tmp/mock-openai-packed; mkdir -p "$packed" "${OUT:=/tmp/out}"
echo "machine: $(nproc) cores, $(grep PRETTY /etc/os-release | cut -d= -f2)"
tar -xJf .dev/pack.tar.xz -C "$packed" || exit 3
export PYTHONHOME=$packed/py LD_LIBRARY_PATH=$packed/py/lib:$packed/tools/lib PYTHONPATH=$packed/deps:$PWD
export WRK=$packed/tools/wrk REDIS_SERVER=$packed/tools/redis-server NGINX=$packed/tools/nginx PATH=$packed/deps/bin:$PATH
"$packed/py/bin/python@VER@" -c 'import gevent, flask, gunicorn, redis' || exit 4
OUT=$OUT timeout 560 "$packed/py/bin/python@VER@" bench/scale.py "$@"
