#!/bin/sh
# Stand-in for Triton's OpenAI-compatible frontend (tests only), installed where the image has it:
# /opt/tritonserver/python/openai/openai_frontend/main.py. It takes main.py's flags (r26.04+) and
# refuses what main.py refuses, checks that the tokenizer is a local folder holding tokenizer files
# (HF_HUB_OFFLINE=1: the real one would fail to reach the Hub otherwise), then serves, from ONE
# process as the real one does with its in-process Triton: the OpenAI routes on --openai-port and,
# with --enable-kserve-frontends, the /v2 routes of the tritonserver stand-in on --kserve-http-port.
REPO=""; TOKENIZER=""; HOST="0.0.0.0"; PORT=9000; KSERVE=0; KHTTP=8000; KGRPC=8001; MODE="none"; LOADS=""
value() { [ -n "$2" ] || { echo "main.py: error: argument $1: expected one argument" >&2; exit 2; }; }
port() { case "$2" in ''|*[!0-9]*) echo "main.py: error: argument $1: invalid int value: '$2'" >&2; exit 2;; esac; }
while [ $# -gt 0 ]; do
    case "$1" in
        --model-repository) value "$1" "$2"; REPO="$2"; shift 2 ;;
        --tokenizer) value "$1" "$2"; TOKENIZER="$2"; shift 2 ;;
        --host) value "$1" "$2"; HOST="$2"; shift 2 ;;
        --openai-port) port "$1" "$2"; PORT="$2"; shift 2 ;;
        --enable-kserve-frontends) KSERVE=1; shift ;;
        --kserve-http-port) port "$1" "$2"; KHTTP="$2"; shift 2 ;;
        --kserve-grpc-port) port "$1" "$2"; KGRPC="$2"; shift 2 ;;
        --model-control-mode) value "$1" "$2"; MODE="$2"; shift 2 ;;
        --model-control-mode=*) MODE="${1#*=}"; shift ;;
        --load-model) value "$1" "$2"; LOADS="$LOADS $2"; shift 2 ;;
        --load-model=*) LOADS="$LOADS ${1#*=}"; shift ;;
        --default-max-tokens) port "$1" "$2"; export STANDIN_DEFAULT_MAX_TOKENS="$2"; shift 2 ;;
        *) echo "main.py: error: unrecognized arguments: $1" >&2; exit 2 ;;
    esac
done
[ -n "$REPO" ] || { echo "main.py: error: the following arguments are required: --model-repository" >&2; exit 2; }
case "$MODE" in none|explicit) ;; *) echo "main.py: error: argument --model-control-mode: invalid choice: '$MODE'" >&2; exit 2 ;; esac
if [ -n "$LOADS" ] && [ "$MODE" != explicit ]; then
    echo "Error: Use of '--load-model' requires setting '--model-control-mode=explicit' as well." >&2
    exit 1
fi
# modelwiz never runs the frontend in "none" mode (every model would load at once at startup).
[ "$MODE" = explicit ] || { echo "stand-in: only --model-control-mode explicit is modelled" >&2; exit 1; }
[ -d "$REPO" ] || { echo "E0101 00:00:00.000000 1 server.cc:281] failed to stat file $REPO" >&2; exit 1; }
if [ -n "$TOKENIZER" ] && [ ! -f "$TOKENIZER/tokenizer_config.json" ]; then
    if [ "$HF_HUB_OFFLINE" = 1 ]; then
        echo "OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the cached files ($TOKENIZER)." >&2
    else
        echo "OSError: $TOKENIZER is not a local folder and is not a valid model identifier listed on 'https://huggingface.co/models'" >&2
    fi
    exit 1
fi
S=/tmp/standin
mkdir -p "$S/models" "$S/openai"
: > "$S/loads"
export STANDIN_REPO="$REPO" STANDIN_MODE="$MODE" STANDIN_STATE="$S" STANDIN_TOKENIZER="$TOKENIZER"
echo "$*" > "$S/frontend-args"
PIDS=""
if [ "$KSERVE" = 1 ]; then
    STANDIN_API=kserve nc -ll -p "$KHTTP" -e /standin/handler.sh &
    PIDS="$PIDS $!"
    echo "I0101 00:00:00.000000 1 http_server.cc:4713] Started HTTPService at $HOST:$KHTTP (gRPC $KGRPC not modelled)"
fi
STANDIN_API=openai nc -ll -p "$PORT" -e /standin/handler.sh &
PIDS="$PIDS $!"
trap 'echo "INFO:     Shutting down"; kill $PIDS 2>/dev/null; exit 0' TERM INT
for m in $LOADS; do  # startup loads: before the server counts as ready, one after another
    until wget -q -O /dev/null "http://127.0.0.1:$PORT/v1/models" 2>/dev/null; do sleep 0.1; done
    wget -q -O /dev/null --post-data "" "http://127.0.0.1:$PORT/v1/models/$m/load" || echo "failed to load '$m'" >&2
done
echo "INFO:     Uvicorn running on http://$HOST:$PORT (Press CTRL+C to quit)"
wait
