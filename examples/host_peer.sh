#!/usr/bin/env bash
# Drive `lexfast host` from bash: a coprocess, one JSON request line out and
# one JSON reply line back per call.   bash examples/host_peer.sh
set -euo pipefail
python=${LEXFAST_PYTHON:-python3}
coproc HOST { exec "$python" -m lexfast host --allow-effects time; }
ask() {  # one request; its reply in $reply (bounded: a wedged host does not hang us)
    printf '%s\n' "$1" >&"${HOST[1]}"
    IFS= read -r -t 10 reply <&"${HOST[0]}"
}
ask '{"id": 1, "kind": "str", "op": "to_upper", "args": ["from bash"]}' && echo "$reply"
ask '{"id": 2, "kind": "time", "op": "now", "args": []}'
[[ $reply == '{"id":2,"ok":'* ]] && echo "time.now: ok"
ask '{"id": 3, "kind": "frob", "op": "x", "args": []}' && echo "$reply"
pid=$HOST_PID
exec {HOST[1]}>&-   # end of input: the host exits
wait "$pid"
