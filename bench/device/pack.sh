#!/usr/bin/env bash
# Make .dev/ in this checkout, ready to travel to a many-core machine that has no network and another Python:
# this machine's Python (pruned), the project's runtime dependencies (as `pip install mock-openai` has them), and the
# components bench/scale.py drives (Debian's wrk, redis-server and nginx, with the libraries they link beyond
# the C library). .dev/ is ignored by git; the code itself travels as the checkout. Then, with the device tool:
#
#     run(command="OUT=$OUT bash .dev/run.sh", carry=[".dev"], timeout_s=420)
#
# (run.sh passes its arguments to bench/scale.py: --only, --duration). About 32 MB packed, two minutes to build.
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
for tool in wrk redis-server nginx; do
    command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin command -v "$tool" >/dev/null || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk redis-server nginx-light >/dev/null
        break
    }
done
base=$(python3 -c 'import sys; print(sys.base_prefix)'); ver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/py/bin" "$work/py/lib" "$work/tools/lib"
cp "$base/bin/python$ver" "$work/py/bin/"
cp "$base"/lib/libpython"$ver".so.1.0 "$work/py/lib/" 2>/dev/null || true
cp -a "$base/lib/python$ver" "$work/py/lib/"
( cd "$work/py/lib/python$ver" && rm -rf test idlelib tkinter ensurepip lib2to3 config-"$ver"* site-packages turtledemo \
    unittest/test && find . -name __pycache__ -type d -prune -exec rm -rf {} + && mkdir site-packages )
python3 -m pip install -q --target "$work/deps" "$root" >/dev/null
rm -rf "$work/deps/app" "$work"/deps/mock_openai-*.dist-info "$work/deps/gevent/tests" "$work/deps/greenlet/tests"
for binary in "$(command -v wrk)" "$(PATH=$PATH:/usr/sbin command -v redis-server)" "$(PATH=$PATH:/usr/sbin command -v nginx)"; do
    cp "$binary" "$work/tools/"
    # every library it links but the C library's own (the other machine has those, of its own version)
    ldd "$binary" | awk '$3 ~ /^\// {print $3}' | grep -Ev '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
        xargs -r cp -L -t "$work/tools/lib/"
done
rm -rf .dev && mkdir -p .dev
tar -cJf .dev/pack.tar.xz -C "$work" py deps tools
sed "s/@VER@/$ver/" bench/device/run.sh > .dev/run.sh
echo "pack.sh: .dev/ ready ($(du -sh .dev | cut -f1)); run it with OUT=\$OUT bash .dev/run.sh, carry [\".dev\"]"
