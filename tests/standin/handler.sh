#!/bin/sh
# One HTTP request on stdin, the response on stdout, Triton-style log lines on stderr.
S="$STANDIN_STATE"
LOAD_SECONDS="${STANDIN_LOAD_SECONDS:-0.3}"

log() { echo "$1 $(date +%H:%M:%S) 1 $2" >&2; }

respond() {  # status, body, [content type]
    printf 'HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
        "$1" "${3:-application/json}" "${#2}" "$2"
}

json_escape() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\n'; }

read -r METHOD TARGET _ || exit 0
TARGET=$(printf '%s' "$TARGET" | tr -d '\r')
LENGTH=0
while read -r line; do
    line=$(printf '%s' "$line" | tr -d '\r')
    [ -z "$line" ] && break
    case "$line" in
        [Cc]ontent-[Ll]ength:*) LENGTH=$(printf '%s' "${line#*:}" | tr -d ' ') ;;
    esac
done
BODY=""
[ "$LENGTH" -gt 0 ] 2>/dev/null && BODY=$(head -c "$LENGTH")

model_state() { cat "$S/models/$1" 2>/dev/null; }

# What the real backend refuses, by the image's release (the NGC image's NVIDIA_TRITON_SERVER_VERSION,
# e.g. 25.07; unset = a current image). Up to 25.09 the backend's engine thread makes vLLM run V0;
# up to 25.03 every KIND_GPU instance lands on the container's first GPU (vllm_backend PR #85).
RELEASE=$(printf '%s' "${NVIDIA_TRITON_SERVER_VERSION:-99.99}" | tr -d '.')
json_int() { sed -n "s/.*\"$1\" *: *\([0-9][0-9]*\).*/\1/p" "$2" | head -n 1; }
json_num() { sed -n "s/.*\"$1\" *: *\([0-9.][0-9.]*\).*/\1/p" "$2" | head -n 1; }

v0_scheduler_error() {  # vLLM SchedulerConfig._verify_args on the V0 engine
    [ "$RELEASE" -lt 2510 ] || return 0
    batch=$(json_int max_num_batched_tokens "$1"); len=$(json_int max_model_len "$1")
    [ -n "$batch" ] && [ -n "$len" ] && [ "$batch" -lt "$len" ] || return 0
    grep -q '"enable_chunked_prefill" *: *true' "$1" && return 0
    # V0 turns chunked prefill on by itself above 32K tokens unless told otherwise.
    [ "$len" -gt 32768 ] && ! grep -q '"enable_chunked_prefill"' "$1" && return 0
    printf '%s' "ValueError: max_num_batched_tokens ($batch) is smaller than max_model_len ($len). This effectively limits the maximum sequence length to max_num_batched_tokens and makes vLLM reject longer sequences. Please increase max_num_batched_tokens or decrease max_model_len."
}

first_gpu_placement() {  # r25.03: torch.cuda.set_device, then vLLM's worker takes cuda:0
    [ "$RELEASE" -lt 2504 ] || return 0
    grep -q 'KIND_GPU' "$2/config.pbtxt" || return 0
    ids=$(sed -n 's/.*gpus *: *\[\([^]]*\)\].*/\1/p' "$2/config.pbtxt" | tr ',' ' ')
    util=$(json_num gpu_memory_utilization "$2/1/model.json"); util=${util:-0.9}
    mkdir -p "$S/gpu0"
    : > "$S/gpu0/$1"
    for id in ${ids:-0}; do
        [ "$id" != 0 ] && log W "[vllm] KIND_GPU instance for GPU $id of '$1' runs on GPU 0"
        held=$(cat "$S"/gpu0/* 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
        if awk -v h="$held" -v u="$util" 'BEGIN { exit !(h + u > 1.0) }'; then
            rm -f "$S/gpu0/$1"
            printf '%s' "ValueError: No available memory for the cache blocks. Try increasing \`gpu_memory_utilization\` when initializing the engine."
            return 0
        fi
        echo "$util" >> "$S/gpu0/$1"
    done
}

vllm_load_lines() {  # what vLLM prints as an engine starts: real lines of vllm PR #17122 (V1, L40S)
    echo "INFO 04-24 16:33:00 [gpu_model_runner.py:1316] Model loading took 14.9889 GiB and 3.652170 seconds" >&2
    echo "INFO 04-24 16:33:13 [kv_cache_utils.py:634] GPU KV cache size: 158,656 tokens" >&2
    echo "INFO 04-24 16:33:13 [kv_cache_utils.py:637] Maximum concurrency for 32,768 tokens per request: 4.84x" >&2
}

load_model() {
    m="$1"
    if [ -e "$S/loading" ]; then echo "OVERLAP $m with $(cat "$S/loading")" >> "$S/loads"; fi
    echo "$m" > "$S/loading"
    echo "start $m" >> "$S/loads"
    log I "model_lifecycle.cc:473] loading: $m:1"
    vllm_load_lines
    sleep "$LOAD_SECONDS"
    dir="$STANDIN_REPO/$m"
    err=""
    if [ ! -d "$dir" ] || [ ! -f "$dir/config.pbtxt" ]; then
        log E "model_repository_manager.cc:1393] Poll failed for model directory '$m': failed to open text file for read $dir/config.pbtxt: No such file or directory"
        echo "end $m" >> "$S/loads"; rm -f "$S/loading"
        respond "400 Bad Request" "{\"error\":\"failed to load '$m', failed to poll from model repository\"}"
        return
    fi
    if [ ! -f "$dir/1/model.json" ]; then
        err="AssertionError: 'model.json' containing vllm engine args must be provided in '$dir/1'"
    elif grep -q '"standin_error"' "$dir/1/model.json"; then
        err=$(sed -n 's/.*"standin_error" *: *"\([^"]*\)".*/\1/p' "$dir/1/model.json")
        log E "[vllm] $err"
    else
        err=$(v0_scheduler_error "$dir/1/model.json")
        [ -z "$err" ] && err=$(first_gpu_placement "$m" "$dir")
        [ -n "$err" ] && log E "[vllm] $err"
    fi
    echo "end $m" >> "$S/loads"
    rm -f "$S/loading"
    if [ -n "$err" ]; then
        echo "UNAVAILABLE" > "$S/models/$m"
        log E "model_lifecycle.cc:654] failed to load '$m' version 1: Internal: $err"
        respond "400 Bad Request" "{\"error\":\"load failed for model '$m': version 1 is at UNAVAILABLE state: Internal: $(json_escape "$err");\\n\"}"
        return
    fi
    echo "READY" > "$S/models/$m"
    log I "model_lifecycle.cc:849] successfully loaded '$m'"
    respond "200 OK" ""
}

index() {
    out=""
    for d in "$STANDIN_REPO"/*/; do
        [ -d "$d" ] || continue
        m=$(basename "$d")
        st=$(model_state "$m")
        if [ -n "$st" ]; then
            row="{\"name\":\"$m\",\"version\":\"1\",\"state\":\"$st\",\"reason\":\"\"}"
        else
            row="{\"name\":\"$m\"}"
        fi
        out="${out:+$out,}$row"
    done
    respond "200 OK" "[$out]"
}

text_input() { printf '%s' "$BODY" | sed -n 's/.*"text_input" *: *"\([^"]*\)".*/\1/p'; }

# --- Triton's OpenAI frontend (openai_main.sh serves these on its --openai-port) -----------------
# Shapes as python/openai/openai_frontend answers them: FastAPI errors {"detail": ...}; streams are
# `data: {chunk}` events (first the role, then one per token, the last with finish_reason), an
# optional usage chunk, then `data: [DONE]` (engine/triton_engine.py _streaming_chat_iterator).
detail() { respond "$1" "{\"detail\":\"$(json_escape "$2")\"}"; }
json_str() { printf '%s' "$BODY" | sed -n "s/.*\"$1\" *: *\"\([^\"]*\)\".*/\1/p" | head -n 1; }
json_bool() { printf '%s' "$BODY" | grep -q "\"$1\" *: *true"; }
openai_model() { printf '{"id":"%s","created":%s,"object":"model","owned_by":"Triton Inference Server"}' "$1" "$(cat "$S/openai/$1")"; }

# The messages as "ROLE<TAB>CONTENT" lines (contents without escaped quotes or newlines are enough here).
messages() {
    printf '%s' "$BODY" | awk '{
        text = $0
        while (match(text, /"role" *: *"[a-z]*"/)) {
            role = substr(text, RSTART, RLENGTH); sub(/.*: *"/, "", role); sub(/"$/, "", role)
            text = substr(text, RSTART + RLENGTH)
            content = ""
            if (match(text, /"content" *: *"[^"]*"/)) {
                content = substr(text, RSTART, RLENGTH); sub(/^"content" *: *"/, "", content); sub(/"$/, "", content)
            }
            print role "\t" content
        }
    }'
}

stream_chunk() {  # id, model, created, delta, finish_reason
    printf 'data: {"id":"%s","choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}],"created":%s,"model":"%s","system_fingerprint":null,"object":"chat.completion.chunk"}\n\n' \
        "$1" "$4" "$5" "$3" "$2"
}

chat() {
    m=$(json_str model)
    [ -f "$S/openai/$m" ] || { detail "400 Bad Request" "Unknown model: $m"; return; }
    # One tokenizer per server: without --tokenizer, chat fails for every model (_validate_chat_request).
    [ -n "$STANDIN_TOKENIZER" ] || { detail "500 Internal Server Error" "Unknown tokenizer"; return; }
    max=$(printf '%s' "$BODY" | sed -n 's/.*"max_tokens" *: *\([0-9][0-9]*\).*/\1/p' | head -n 1)
    max=${max:-${STANDIN_DEFAULT_MAX_TOKENS:-16}}
    turns=$(messages | grep -c "^user	")
    last=$(messages | grep "^user	" | tail -n 1 | cut -f 2-)
    echo "chat $m turns=$turns max_tokens=$max" >> "$S/requests"
    words="echo: $last (turn $turns)"
    id="cmpl-$(date +%s)$$"; now=$(date +%s); n=0; reply=""; finish='"stop"'
    set -- $words
    [ "$#" -gt "$max" ] && finish='"length"'
    if ! json_bool stream; then
        for w in "$@"; do [ "$n" -ge "$max" ] && break; n=$((n + 1)); reply="${reply:+$reply }$w"; done
        respond "200 OK" "{\"id\":\"$id\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"$(json_escape "$reply")\"},\"logprobs\":null,\"finish_reason\":$finish}],\"created\":$now,\"model\":\"$m\",\"system_fingerprint\":null,\"object\":\"chat.completion\",\"usage\":{\"completion_tokens\":$n,\"prompt_tokens\":$turns,\"total_tokens\":$((n + turns))}}"
        return
    fi
    printf 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nConnection: close\r\n\r\n'
    stream_chunk "$id" "$m" "$now" '{"role":"assistant","content":"","function_call":null}' null
    for w in "$@"; do
        [ "$n" -ge "$max" ] && break
        n=$((n + 1))
        piece=$([ "$n" -gt 1 ] && printf ' ')$w
        end=null; { [ "$n" -eq "$#" ] || [ "$n" -eq "$max" ]; } && end=$finish
        stream_chunk "$id" "$m" "$now" "{\"content\":\"$(json_escape "$piece")\",\"function_call\":null,\"role\":null}" "$end"
        [ "$m" = "$STANDIN_CUT_MODEL" ] && exit 0  # a reply cut mid-stream: no [DONE]
    done
    if printf '%s' "$BODY" | grep -q '"include_usage" *: *true'; then
        printf 'data: {"id":"%s","choices":[],"created":%s,"model":"%s","system_fingerprint":null,"object":"chat.completion.chunk","usage":{"completion_tokens":%s,"prompt_tokens":%s,"total_tokens":%s}}\n\n' \
            "$id" "$now" "$m" "$n" "$turns" "$((n + turns))"
    fi
    printf 'data: [DONE]\n\n'
}

openai_load() {
    m="$1"
    [ "$STANDIN_MODE" = explicit ] || { detail "400 Bad Request" "Model load/unload requires --model-control-mode=explicit"; return; }
    [ -f "$S/openai/$m" ] && { detail "400 Bad Request" "Model $m is already loaded"; return; }
    out=$(load_model "$m")
    case "$out" in
        "HTTP/1.1 200"*) date +%s > "$S/openai/$m"; respond "200 OK" "$(openai_model "$m")" ;;
        *) why=$(printf '%s' "$out" | sed -n 's/.*"error":"\(.*\)"}$/\1/p' | sed 's/\\n//g; s/\\"/"/g')
           detail "500 Internal Server Error" "Failed to load model '$m': $why" ;;
    esac
}

if [ "$STANDIN_API" = openai ]; then
    case "$METHOD $TARGET" in
        "GET /health/ready") respond "200 OK" "" ;;
        "GET /metrics") respond "200 OK" "$(for f in "$S"/openai/*; do [ -f "$f" ] && printf 'nv_model_ready{model="%s",version="1"} 1\n' "$(basename "$f")"; done)" "text/plain; version=0.0.4" ;;
        "GET /v1/models")
            out=""; for f in "$S"/openai/*; do [ -f "$f" ] && out="${out:+$out,}$(openai_model "$(basename "$f")")"; done
            respond "200 OK" "{\"object\":\"list\",\"data\":[$out]}" ;;
        "GET /v1/models/"*)
            m="${TARGET#/v1/models/}"
            if [ -f "$S/openai/$m" ]; then respond "200 OK" "$(openai_model "$m")"; else detail "404 Not Found" "Unknown model: $m"; fi ;;
        "POST /v1/models/"*/load) m="${TARGET#/v1/models/}"; openai_load "${m%/load}" ;;
        "POST /v1/models/"*/unload)
            m="${TARGET#/v1/models/}"; m="${m%/unload}"
            if [ -f "$S/openai/$m" ]; then
                rm -f "$S/openai/$m" "$S/models/$m" "$S/gpu0/$m"; log I "model_lifecycle.cc:623] successfully unloaded '$m' version 1"
                respond "200 OK" "{\"id\":\"$m\",\"object\":\"model\",\"owned_by\":\"Triton Inference Server\"}"
            else detail "400 Bad Request" "Unknown model: $m"; fi ;;
        "POST /v1/chat/completions") chat ;;
        *) detail "404 Not Found" "Not Found" ;;
    esac
    exit 0
fi

case "$METHOD $TARGET" in
    "GET /v2/health/live"|"GET /v2/health/ready") respond "200 OK" "" ;;
    "POST /v2/repository/index") index ;;
    "POST /v2/repository/models/"*/load)
        m="${TARGET#/v2/repository/models/}"; load_model "${m%/load}" ;;
    "POST /v2/repository/models/"*/unload)
        m="${TARGET#/v2/repository/models/}"; m="${m%/unload}"
        rm -f "$S/models/$m" "$S/gpu0/$m"; log I "model_lifecycle.cc:623] successfully unloaded '$m' version 1"
        respond "200 OK" "" ;;
    "GET /v2/models/"*/ready)
        m="${TARGET#/v2/models/}"; m="${m%/ready}"
        if [ "$(model_state "$m")" = "READY" ]; then respond "200 OK" ""
        else respond "400 Bad Request" "{\"error\":\"Model version not ready\"}"; fi ;;
    "POST /v2/models/"*/generate|"POST /v2/models/"*/generate_stream)
        rest="${TARGET#/v2/models/}"; m="${rest%%/*}"
        if [ "$(model_state "$m")" != "READY" ]; then
            respond "400 Bad Request" "{\"error\":\"Request for unknown model: '$m' is not found\"}"
        elif [ "${rest##*/}" = "generate" ]; then
            respond "200 OK" "{\"model_name\":\"$m\",\"model_version\":\"1\",\"text_output\":\"echo: $(text_input)\"}"
        else
            printf 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n'
            for word in echo: $(text_input); do
                printf 'data: {"model_name":"%s","model_version":"1","text_output":"%s "}\n\n' "$m" "$word"
            done
        fi ;;
    "GET /standin/loads") respond "200 OK" "$(cat "$S/loads")" "text/plain" ;;
    *) respond "400 Bad Request" "{\"error\":\"Not Found\"}" ;;
esac
