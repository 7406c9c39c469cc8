# shellcheck shell=bash disable=SC2154,SC2034  # work comes from the caller; frontend_port goes back to it
# HAProxy with live traffic for the demos (sourced by contrib/demo/run.sh and
# contrib/demo/central.sh after bench/lib.sh).
#
# start_demo_haproxy NAME SOCKET_DIR: one HAProxy 2.6 instance, its stats
# socket SOCKET_DIR/NAME.sock, a frontend fe_web on a free loopback port
# balancing over two servers that are its own responder frontend, so it
# needs no web server; sets frontend_port once it listens.
start_demo_haproxy() {
    local name=$1 sockets=$2 app_port
    frontend_port=$(free_port)
    app_port=$(free_port)
    mkdir -p "$sockets"
    cat >"$work/$name.cfg" <<CFG
global
    stats socket $sockets/$name.sock mode 600 level admin
    pidfile $work/$name.pid
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe_web
    bind 127.0.0.1:$frontend_port
    default_backend be_app
backend be_app
    balance roundrobin
    server app1 127.0.0.1:$app_port check inter 1s
    server app2 127.0.0.1:$app_port check inter 1s
frontend responder
    bind 127.0.0.1:$app_port
    http-request return status 200 content-type text/plain string ok
CFG
    start_haproxy "$name" "$work/$name.cfg"
    wait_for_port "$frontend_port" "$name"
}

# traffic PORT...: 10 to 49 HTTP requests to each port, a connection each
# (Connection: close), so that every counter moves between two pulls; one
# curl per port (its URL glob), not one per request, to spare the CPU.
traffic() {
    local port
    for port in "$@"; do
        curl -s -m 5 -H 'Connection: close' "http://127.0.0.1:$port/?[1-$((RANDOM % 40 + 10))]" \
            >/dev/null || true
    done
}
